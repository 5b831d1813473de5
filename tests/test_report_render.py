"""The written report: one self-contained HTML file, Markdown with SVG files, JSON, evidence."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.store import open_store
from reports.build import Report, ReportInputs, build_report
from reports.periods import parse_period
from reports.render_markdown import render_markdown
from reports.write import generate_report, list_archive
from tests.fixtures.reports import MITM_ISSUER, REPORT_TARGETS, HistoryStore

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class StrictTagParser(HTMLParser):
    """Fails on any end tag that does not close the innermost open element; collects links."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.links: list[tuple[str, str, str]] = []  # (tag, attribute, value)
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "action", "srcset", "poster", "data"):
                self.links.append((tag, name, value or ""))
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href"):
                self.links.append((tag, name, value or ""))

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'} "
                                 f"at {self.getpos()}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse_strictly(html: str) -> StrictTagParser:
    parser = StrictTagParser()
    parser.feed(html)
    parser.close()
    assert parser.problems == []
    assert parser.stack == [], f"unclosed: {parser.stack}"
    return parser


@pytest.fixture(scope="module")
def written(history_store: HistoryStore, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out_dir = tmp_path_factory.mktemp("archive")
    store = open_store(history_store.url, migrate=False)
    try:
        result = generate_report(store, parse_period("2026-11"), out_dir,
                                 targets=list(REPORT_TARGETS))
    finally:
        store.close()
    assert result.directory == out_dir / "2026-11"
    return result.directory


def test_html_is_balanced_and_fetches_nothing(written: Path) -> None:
    html = (written / "report.html").read_text(encoding="utf-8")
    parser = parse_strictly(html)
    # Decision: measured sites appear as text only; the only links are relative ones to the
    # evidence files and in-page anchors. No src= at all: charts and styles are inline.
    assert [link for link in parser.links if link[1] != "href"] == []
    for _tag, _attribute, value in parser.links:
        assert not re.match(r"^(?:[a-z][a-z0-9+.-]*:|//)", value, re.IGNORECASE), value
        assert value.startswith(("evidence/", "#")), value
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r"url\(", html)
    assert "<svg" in html and "<style>" in html


def test_html_states_the_findings(written: Path) -> None:
    text = " ".join(parse_strictly((written / "report.html").read_text("utf-8")).text)
    text = re.sub(r"\s+", " ", text)
    for words in ("still blocked", "no longer blocked", "never seen blocked", "not measurable",
                  MITM_ISSUER, "Kazakhtelecom blockpage", "kz-ktc-blockpage-1", "93.3%", "46.7%",
                  "2026-11-03 00:00 UTC", "2026-11-15 00:00 UTC", "AS9198", "AS21299",
                  "JSC Kazakhtelecom", "Methodology", "Caveats", "https://blocked.example/"):
        assert words in text, words
    for target in REPORT_TARGETS:
        assert target.briefing is not None and target.briefing.quote in text


def test_every_evidence_link_has_its_file(written: Path) -> None:
    html = (written / "report.html").read_text(encoding="utf-8")
    linked = set(re.findall(r'href="evidence/([^"]+)\.json"', html))
    assert len(linked) >= 10
    for uid in linked:
        document = json.loads((written / "evidence" / f"{uid}.json").read_text("utf-8"))
        assert document["measurement_uid"] == uid


def test_markdown_links_its_charts(written: Path) -> None:
    markdown = (written / "report.md").read_text(encoding="utf-8")
    assert markdown.startswith("# blockmon report: 2026-11")
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert "charts/heatmap.svg" in images and "charts/methods-by-asn.svg" in images
    assert "charts/timeline-lifted-kz-almaty-1.svg" in images
    for image in images:
        svg = (written / image).read_text(encoding="utf-8")
        assert svg.startswith("<svg") and svg.endswith("</svg>")
        parse_strictly(svg)
    assert "### Lifted Daily — **no longer blocked**" in markdown
    assert "46.7% (28/60)" in markdown
    assert MITM_ISSUER in markdown
    assert "- New blocks: 1; unblocks: 1" in markdown
    for uid in re.findall(r"\]\(evidence/([^)]+)\.json\)", markdown):
        assert (written / "evidence" / f"{uid}.json").is_file()


def test_json_carries_the_model(written: Path) -> None:
    document = json.loads((written / "report.json").read_text(encoding="utf-8"))
    assert document["format_version"] == 1
    assert document["period"]["label"] == "2026-11" and len(document["period"]["days"]) == 30
    verdicts = {claim["target_id"]: claim["verdict"] for claim in document["claims"]}
    assert verdicts == {"blockednews": "still blocked", "lifted": "no longer blocked",
                        "openpaper": "never seen blocked", "deadsite": "not measurable",
                        "unmeasured": "not measurable"}
    assert document["summary"]["new_blocks"] == 1
    methods = [method for claim in document["claims"] for vantage in claim["vantages"]
               for url in vantage["urls"] for method in url["methods"]]
    assert {"tls.mitm", "http.blockpage", "dns.nxdomain"} == {m["method"] for m in methods}
    assert next(m for m in methods if m["method"] == "tls.mitm")["tls_issuer"] == MITM_ISSUER


def test_archive_lists_written_reports(written: Path) -> None:
    (archived,) = list_archive(written.parent)
    assert archived.label == "2026-11" and archived.formats == ("html", "md", "json")


def test_report_command_writes_the_chosen_format(history_store: HistoryStore,
                                                 tmp_path: Path) -> None:
    config = tmp_path / "blockmon.toml"
    config.write_text(f'[storage]\ndatabase = "{history_store.url}"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "report", "--from", "2026-11-10",
                                      "--to", "2026-11-20", "--format", "md", "--out",
                                      str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    directory = tmp_path / "out" / "2026-11-10_2026-11-20"
    assert (directory / "report.md").is_file() and not (directory / "report.html").exists()
    assert str(directory / "report.md") in result.output


@pytest.mark.parametrize(("arguments", "message"), [
    (["--period", "2026-13"], "period '2026-13': month must be 01 to 12"),
    (["--from", "2026-11-01"], "--from and --to go together"),
    (["--period", "2026-11", "--from", "2026-11-01", "--to", "2026-11-02"], "not both"),
    (["--from", "yesterday", "--to", "2026-11-02"], "--from 'yesterday'"),
    (["--period", "9999-12"], "period '9999-12': out of range"),
])
def test_report_command_refuses_bad_periods_in_one_line(arguments: list[str], message: str,
                                                        history_store: HistoryStore,
                                                        tmp_path: Path) -> None:
    config = tmp_path / "blockmon.toml"
    config.write_text(f'[storage]\ndatabase = "{history_store.url}"\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["--config", str(config), "report", *arguments])
    assert result.exit_code != 0
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def hostile_report() -> Report:
    """A stray target whose URL, vantage, network name and interception issuer came from the
    network or a collector's probes, each trying to break out of Markdown."""
    from monitor.store.queries import (
        DailyCounts,
        EvidenceDetail,
        MeasurementOutcome,
        MethodCount,
        StateAt,
    )

    url = "https://evil.example/a|b`c<img src=x onerror=alert(1)>"
    vantage = "kz|1 <b>"
    uid = "20261103T000000.000000Z_KZ_webconnectivity_00"
    issuer = "CN=<script>alert(1)</script> | *bold* [x](http://phish.example)\n# Heading"
    at = "2026-11-03T00:00:00Z"
    daily = DailyCounts(None, url, vantage, "2026-11-03", "KZ", "AS9198", "Net\n| x | <i>",
                        1, 1, 1, 0, 0, 0, at, at, uid, uid, uid, at)
    method = MethodCount(None, url, vantage, "AS9198", "Net", "tls.mitm", None, 1, at, at, uid)
    return build_report(ReportInputs(
        period=parse_period("2026-11"), generated_at=at, targets=(), daily=(daily,),
        methods=(method,), states_at_start=(),
        states_at_end=(StateAt(vantage, url, None, "blocked", "tls.mitm", at, uid),),
        transitions=(), outcomes={uid: MeasurementOutcome(uid, at, "tls", 0, "tls.mitm")},
        evidence={uid: EvidenceDetail(uid, issuer, None, False, ())}))


def test_markdown_keeps_measured_strings_as_text() -> None:
    markdown = render_markdown(hostile_report())
    for lines in (line for line in markdown.splitlines() if line.startswith("|")):
        # Every cell separator is the table's own: data pipes are escaped.
        assert len(re.findall(r"(?<!\\)\|", lines)) in (5, 7, 8, 10), lines
    # Raw HTML would pass through most Markdown renderers: no "<" outside code spans unescaped.
    outside_code = re.sub(r"``.*?``|`[^`\n]*`", "", markdown)
    assert re.findall(r"(?<!\\)<", outside_code) == []
    assert "\n# Heading" not in markdown
    assert not re.search(r"(?<!\\)\]\(http://phish", markdown) and "*bold*" not in markdown
    assert (r"CN=\<script\>alert(1)\</script\> \| \*bold\* \[x\](http://phish.example) # "
            "Heading") in markdown
    assert "| ``https://evil.example/a\\|b`c<img src=x onerror=alert(1)>`` |" in markdown


def test_two_writers_of_one_report_do_not_trip_over_each_other(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The weekly job and a dashboard "generate now" can write the same period at once. Here
    # the second writer runs entirely between the first one's write and its rename.
    import reports.write as write

    real_replace = write.os.replace
    interleaved: list[str] = []

    def replace_after_another_writer(source: Any, target: Any) -> None:
        if not interleaved:
            interleaved.append(str(target))
            write._write_text(Path(target), "the other writer's report")
        real_replace(source, target)

    monkeypatch.setattr(write.os, "replace", replace_after_another_writer)
    written = write._write_text(tmp_path / "2026-11" / "report.md", "this writer's report")
    assert interleaved == [str(written)]
    assert written.read_text(encoding="utf-8") == "this writer's report"
    assert [path.name for path in written.parent.iterdir()] == ["report.md"]


def test_each_timeline_has_its_own_chart_file() -> None:
    # Stray targets are named by their URL; two URLs that differ only in characters a file
    # name cannot hold must not share (and overwrite) one chart.
    from reports.render_markdown import chart_files, timeline_file

    assert timeline_file("lifted", "kz-almaty-1") == "charts/timeline-lifted-kz-almaty-1.svg"
    names = {timeline_file(target, "kz-1") for target in
             ("https://x.example/", "https://x.example", "https://x.example/?", "https-x.example")}
    assert len(names) == 4
    assert all(re.fullmatch(r"charts/timeline-[A-Za-z0-9_.-]+\.svg", name) for name in names)
    report = hostile_report()
    assert len([name for name in chart_files(report) if "timeline" in name]) == 1
