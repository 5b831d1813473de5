"""Pure: a Report as ONE self-contained HTML file (inline CSS and SVG; links only to evidence/)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jinja2

from reports.build import Report
from reports.charts import (
    render_heatmap_svg,
    render_methods_by_asn_svg,
    render_overview_svg,
    render_timeline_svg,
)
from reports.formatting import evidence_path, format_rate, format_share, verdict_class, when
from reports.summary import summary_lines

_TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True, slots=True)
class ReportCharts:
    heatmap: str
    methods: str
    overview: str  # blocked URLs per day, by list and vantage
    timelines: dict[tuple[str, str], str]  # (target id, vantage id) -> SVG


def render_charts(report: Report) -> ReportCharts:
    findings = (*report.claims, *report.others)
    return ReportCharts(
        heatmap=render_heatmap_svg(report.heatmap),
        methods=render_methods_by_asn_svg(report.methods_by_asn),
        overview=render_overview_svg(
            [(point.day, f"{point.list_name or '(no list)'} at {point.vantage_id}",
              point.blocked_urls) for point in report.overview], report.period.days),
        timelines={(finding.target_id, timeline.vantage_id): render_timeline_svg(
            timeline, f"{finding.target_name} from {timeline.vantage_id}, per day")
            for finding in findings for timeline in finding.timelines})


def template_environment() -> jinja2.Environment:
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES),
                                     autoescape=True, undefined=jinja2.StrictUndefined,
                                     trim_blocks=True, lstrip_blocks=True)
    environment.globals.update(when=when, format_share=format_share, format_rate=format_rate,
                               verdict_class=verdict_class, evidence_path=evidence_path,
                               summary_lines=summary_lines)
    return environment


def render_html(report: Report) -> str:
    template = template_environment().get_template("report.html.j2")
    return template.render(report=report, charts=render_charts(report))
