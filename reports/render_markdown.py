"""Pure: a Report as Markdown, with its charts as SVG files to write next to it."""

from __future__ import annotations

import hashlib
import re

from reports.formatting import evidence_path, format_share, when
from reports.model import Report, TargetFinding
from reports.render_html import render_charts
from reports.summary import summary_lines


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"
    # A name the file system could not take as is gets a short digest of itself, so that
    # "https://x.example/" and "https://x.example" do not share one chart file.
    return slug if slug == text else f"{slug}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def timeline_file(target_id: str, vantage_id: str) -> str:
    return f"charts/timeline-{_slug(target_id)}-{_slug(vantage_id)}.svg"


def chart_files(report: Report) -> dict[str, str]:
    """Relative path -> SVG text, for every chart the Markdown report links."""
    charts = render_charts(report)
    files = {"charts/heatmap.svg": charts.heatmap, "charts/methods-by-asn.svg": charts.methods,
             "charts/blocked-per-day.svg": charts.overview}
    for (target_id, vantage_id), svg in charts.timelines.items():
        files[timeline_file(target_id, vantage_id)] = svg
    return files


# Names, URLs, vantage ids and certificate issuers come from registries, probes and the
# network: in Markdown they could open raw HTML (<script>), links, emphasis or a new table cell.
_MARKUP = re.compile(r"([\\`*_\[\]<>|])")


def _cell(text: object) -> str:
    """Data as Markdown text on one line, every character that starts markup escaped."""
    return _MARKUP.sub(r"\\\1", " ".join(str(text).splitlines()))


def _code(text: str) -> str:
    """Data as a code span in a table cell: pipes escaped, fenced past any backticks inside."""
    text = " ".join(text.splitlines()).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _finding(finding: TargetFinding) -> list[str]:
    lists = f" (list {', '.join(finding.lists)})" if finding.lists else ""
    lines = [f"### {_cell(finding.target_name)} — **{finding.verdict_words}**{_cell(lists)}", ""]
    if finding.claim:
        lines += [f"> “{_cell(finding.claim.quote)}”", "",
                  f"Briefing (2015), section “{_cell(finding.claim.section)}”, line "
                  f"{finding.claim.line}; period {_cell(finding.claim.period)}.", ""]
    lines += [_cell(finding.explanation), ""]
    if len(finding.lineage) > 1:
        lines += ["| domain | role | status | note |", "|---|---|---|---|"]
        lines += [f"| {_code(entry.url)} | {entry.role} | {entry.status} | {_cell(entry.note or '')} |"
                  for entry in finding.lineage]
        lines.append("")
    if finding.vantages:
        lines += ["| vantage | URL | state | method | first blocked | last blocked | anomalous "
                  "| verdict | measurements |", "|---|---|---|---|---|---|---|---|---|"]
        for vantage in finding.vantages:
            for url in vantage.urls:
                methods = "; ".join(f"{method.description} ({method.method}, "
                                    f"{method.measurements}×)" for method in url.methods) or "-"
                evidence = " ".join(f"[{uid}]({evidence_path(uid)})" for uid in url.evidence_uids)
                lines.append(
                    f"| {_cell(vantage.vantage.vantage_id)} "
                    f"({_cell(vantage.source or vantage.vantage.probe_asn or '?')}) "
                    f"| {_code(url.url)} | {url.state} | {_cell(methods)} "
                    f"| {when(url.first_blocked_at)} | {when(url.last_blocked_at)} "
                    f"| {format_share(url.anomaly_share)} ({url.anomalies}/{url.measurements}) "
                    f"| {url.verdict} | {evidence} |")
        lines.append("")
        for timeline in finding.timelines:
            lines += [f"![{_cell(finding.target_name)} from {_cell(timeline.vantage_id)}]"
                      f"({timeline_file(finding.target_id, timeline.vantage_id)})", ""]
    return lines


def render_markdown(report: Report) -> str:
    summary = report.summary
    lines = [f"# {report.title}: {report.period.label}", "",
             f"Period {report.period.description}. Generated {when(report.generated_at)}.", "",
             *([f"Limited to the list{'s' if len(report.lists) > 1 else ''} "
                f"{_cell(', '.join(report.lists))}.", ""] if report.lists else []),
             "## Summary", "",
             *[f"- {_cell(line)}" for line in summary_lines(report.summary)], ""]
    if summary.blocked_where:
        lines += ["| vantage | source | country | ASN | network | blocked targets | blocked since |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {_cell(place.vantage.vantage_id)} | {_cell(place.source)} "
                  f"| {_cell(place.vantage.probe_cc or '')} "
                  f"| {_cell(place.vantage.probe_asn or '')} "
                  f"| {_cell(place.vantage.probe_network_name or '')} "
                  f"| {_cell(', '.join(place.target_ids))} | {when(place.since)} |"
                  for place in summary.blocked_where]
        lines.append("")
    lines += ["## Overview", "",
              "![Blocked URLs per day, by list and vantage](charts/blocked-per-day.svg)", "",
              "![Blocking by target and day](charts/heatmap.svg)", "",
              "![Blocked measurements by network and method](charts/methods-by-asn.svg)", "",
              "## Changes in the period", ""]
    if report.changes:
        lines += ["| when | change | target | URL | vantage | method | measurement |",
                  "|---|---|---|---|---|---|---|"]
        lines += [f"| {when(change.at)} | {change.kind} | {_cell(change.target_name)} "
                  f"| {_code(change.url)} | {_cell(change.vantage_id)} "
                  f"| {_cell(change.method or '')} | "
                  + (f"[{change.measurement_uid}]({evidence_path(change.measurement_uid)})"
                     if change.measurement_uid else "") + " |"
                  for change in report.changes]
    else:
        lines.append("No new blocks and no unblocks in the period.")
    lines += ["", "## The briefing's claims", ""]
    for finding in report.claims:
        lines += _finding(finding)
    if report.others:
        lines += ["## Other targets", ""]
        for finding in report.others:
            lines += _finding(finding)
    lines += ["## Methodology", ""] + [f"- {line}" for line in report.methodology]
    lines += ["", "## Caveats", ""] + [f"- {line}" for line in report.caveats]
    lines += ["", "Measured sites are written as code, not links. Each measurement uid links to "
              "its OONI-format JSON in `evidence/`.", ""]
    return "\n".join(lines)
