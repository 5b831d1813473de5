"""Issue 15, findings 2-7 and 10: report per list, honest messages, blocked first, CSV, extents."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner, Result

from monitor.cli import cli
from monitor.settings import load_settings
from monitor.store import open_store
from reports.dashboard import build_dashboard_app
from reports.model import LineageEntry, TargetFinding
from reports.summary import CURRENT_DOMAIN, FORMER_DOMAIN_ONLY, SOME_URLS, decide_extent
from tests.fixtures.two_lists import AZATTYQ


def invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), *args])


def test_report_of_one_list_leaves_the_others_out(two_lists_config: Path,
                                                  tmp_path: Path) -> None:
    # Finding 2: a monthly report after a kz import was every list's (580 sections).
    result = invoke(two_lists_config, "report", "--period", "2026-12", "--list", "briefing",
                    "--format", "md", "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    markdown = (tmp_path / "r" / "2026-12--briefing" / "report.md").read_text(encoding="utf-8")
    assert "Limited to the list briefing." in markdown
    assert "today.kz" not in markdown and "azattyq.org —" not in markdown
    assert "2 targets with 2 URLs; 2 targets (2 URLs) measured" in markdown
    # Finding 7: targets and URLs named as such, each URL once.
    assert ("Blocked at the end of the period: 1 target (azattyq); 1 URL blocked, each counted "
            "once") in markdown


def test_report_without_a_period_names_the_one_it_chose_and_says_it_is_empty(
        two_lists_config: Path, tmp_path: Path) -> None:
    # Finding 3: it silently wrote last month's empty report and named an evidence folder.
    result = invoke(two_lists_config, "report", "--out", str(tmp_path / "r"), "--format", "json")
    assert result.exit_code == 0, result.output
    assert "the last whole month; choose another with --period" in result.stderr
    assert "is empty: nothing was measured in" in result.stderr
    assert "evidence" not in result.output
    full = invoke(two_lists_config, "report", "--period", "2026-12", "--out",
                  str(tmp_path / "r"), "--format", "json")
    assert "evidence measurements in" in full.stdout and "is empty" not in full.stderr


def test_an_empty_filter_names_itself_and_the_values_that_exist(two_lists_config: Path) -> None:
    # Finding 5: every empty filter said "nothing measured yet" on a full database.
    for args, expected in (
        (["--list", "nolist"], "0 URLs: no URL matches --list nolist (known: briefing, kz)"),
        (["--vantage", "nope"], "no URL matches --vantage nope (known: kz-almaty-1)"),
        (["--state", "anomaly"], "no URL matches --state anomaly (known: blocked, accessible)"),
    ):
        result = invoke(two_lists_config, "status", *args)
        assert result.exit_code == 0, result.output
        assert expected in result.output
        assert "nothing measured yet" not in result.output
    # A category in lower case is the same category.
    news = invoke(two_lists_config, "status", "--category", "news", "--format", "json")
    assert {row["url"] for row in json.loads(news.stdout)["states"]} == {
        AZATTYQ, "https://today.kz/"}


async def test_the_dashboard_puts_blocked_rows_first_with_counts(two_lists_config: Path) -> None:
    # Finding 6: the overview sorted alphabetically (vk and today.kz before azattyq).
    settings = load_settings(two_lists_config, environ={})
    app = build_dashboard_app(lambda: open_store(settings.storage.database_url, migrate=False),
                              settings)
    async with TestClient(TestServer(app)) as client:
        data = await (await client.get("/api/v1/states")).json()
        assert [row["state"] for row in data["states"]] == ["blocked", "accessible",
                                                             "accessible"]
        assert list(data["by_state"]) == ["blocked", "accessible"]
        empty = await (await client.get("/?list=nolist")).text()
        assert "No URL matches list = nolist" in empty and "known: briefing, kz" in empty


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_status_history_export_and_report_write_csv(two_lists_config: Path,
                                                    tmp_path: Path) -> None:
    # Finding 10: export was JSONL only; status and history had JSON.
    status = _rows(invoke(two_lists_config, "status", "--format", "csv").stdout)
    assert [(row["state"], row["url"]) for row in status][0] == ("blocked", AZATTYQ)
    assert status[0]["lists"] == "briefing kz"
    history = _rows(invoke(two_lists_config, "history", "azattyq", "--format", "csv").stdout)
    assert [row["to_state"] for row in history if row["kind"] == "state change"] == [
        "accessible", "anomaly", "blocked"]
    export = _rows(invoke(two_lists_config, "export", "--since", "2026-12-01",
                          "--format", "csv").stdout)
    assert len(export) == 6 and export[-1]["blocking_method"] == "dns.nxdomain"
    result = invoke(two_lists_config, "report", "--period", "2026-12", "--format", "csv",
                    "--out", str(tmp_path / "r"))
    assert result.exit_code == 0, result.output
    folder = tmp_path / "r" / "2026-12" / "csv"
    urls = _rows((folder / "urls.csv").read_text(encoding="utf-8"))
    assert urls[0]["verdict"] == "still blocked" and urls[0]["url"] == AZATTYQ
    per_day = _rows((folder / "blocked-per-day.csv").read_text(encoding="utf-8"))
    assert {(row["list"], row["blocked_urls"]) for row in per_day} == {("briefing", "1"),
                                                                        ("kz", "1")}
    assert {path.name for path in folder.iterdir()} == {
        "targets.csv", "urls.csv", "changes.csv", "blocked-where.csv", "methods-by-asn.csv",
        "blocked-per-day.csv"}


def _finding(*entries: tuple[str, str]) -> TargetFinding:
    return TargetFinding("eurasianet", "Eurasianet", "NEWS", None, "still blocked", "", tuple(
        LineageEntry(f"https://{index}.example/", role, status, None)
        for index, (role, status) in enumerate(entries)), (), ())


def test_claim_extent_does_not_overstate() -> None:
    # Finding 10: "still blocked" for Eurasianet when only its former www. host was blocked.
    assert decide_extent(_finding(("home", "accessible"), ("former", "blocked"))) \
        == FORMER_DOMAIN_ONLY
    assert decide_extent(_finding(("home", "blocked"), ("content", "blocked"),
                                  ("former", "accessible"))) == CURRENT_DOMAIN
    assert decide_extent(_finding(("home", "blocked"), ("current", "blocked"),
                                  ("mirror", "accessible"))) == CURRENT_DOMAIN
    assert decide_extent(_finding(("home", "accessible"), ("content", "blocked"))) == SOME_URLS


def test_targets_validate_reports_every_problem_of_a_csv(tmp_path: Path) -> None:
    # Finding 10: it stopped at the first problem although its help says every problem.
    path = tmp_path / "kz.csv"
    path.write_text(
        "url,category_code,category_description,date_added,source,notes\n"
        "https://ok.example/,NEWS,News,2020-01-01,,\n"
        "not-a-url,NEWS,News,2020-01-01,,\n"
        "https://b.example/,NOPE,?,2020-13-45,,\n"
        "https://ok.example/,NEWS,News,,,\n"
        "https://c.example/,NEWS\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["targets", "validate", str(path)])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if str(path) in line]
    assert len(lines) == 5 + 1, result.stderr  # 5 problems and the closing count
    assert "url" in lines[0] and "category_code" in lines[1] and "date_added" in lines[2]
    assert "duplicate URL" in lines[3] and "2 fields, expected 6" in lines[4]
    assert "5 problem(s); 1 rows are fine" in result.stderr


def test_charts_name_every_method_in_its_own_colour_and_cut_labels_at_words() -> None:
    # Finding 8: 2 of 5 segments labelled, two TLS methods in one colour, labels cut mid-word.
    import re

    from reports.charts import render_heatmap_svg, render_methods_by_asn_svg
    from reports.model import AsnMethods, DayCell, HeatRow

    methods = (("tls.mitm", 40), ("tls.timeout", 30), ("dns.nxdomain", 3), ("tcp.reset", 2),
               ("http.blockpage", 1))
    svg = render_methods_by_asn_svg([AsnMethods("AS9198", "JSC Kazakhtelecom", methods)])
    legend = re.findall(r'fill="(#[0-9a-f]{6})"></rect><text[^>]*>([a-z.]+)</text>', svg)
    assert sorted(name for _, name in legend) == sorted(name for name, _ in methods)
    assert len({colour for colour, _ in legend}) == len(methods)
    heat = render_heatmap_svg([HeatRow("rferl", "Radio Free Europe/Radio Liberty",
                                       (DayCell("2026-12-01", 1, 1, 0, 0, 0),))])
    assert ">Radio Free Europe/Radio…<title>Radio Free Europe/Radio Liberty</title>" in heat
