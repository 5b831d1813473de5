"""Pure: each table of a Report as CSV text, blocked first, for spreadsheets (csv/*.csv)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from reports.model import Report

_FINDING_RANK = {"still blocked": 0, "no longer blocked": 1, "never seen blocked": 2,
                 "down": 3, "not measurable": 4}


def _csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(["" if cell is None else cell for cell in row] for row in rows)
    return out.getvalue()


def render_csv_tables(report: Report) -> dict[str, str]:
    """File name (under csv/) -> CSV text, one per table of the report."""
    findings = sorted((*report.claims, *report.others),
                      key=lambda item: (_FINDING_RANK.get(item.verdict, 9), item.target_id))
    urls = [(finding, vantage, url) for finding in findings for vantage in finding.vantages
            for url in vantage.urls]
    urls.sort(key=lambda item: (_FINDING_RANK.get(item[2].verdict, 9), item[0].target_id,
                                item[2].url, item[1].vantage.vantage_id))
    summary = report.summary
    return {
        "targets.csv": _csv(
            ("target_id", "target_name", "lists", "category_code", "briefing_claim", "verdict",
             "extent", "explanation"),
            ((f.target_id, f.target_name, " ".join(f.lists), f.category_code,
              f.claim.claim if f.claim else None, f.verdict, f.extent, f.explanation)
             for f in findings)),
        "urls.csv": _csv(
            ("target_id", "url", "role", "vantage_id", "probe_asn", "state", "state_since",
             "verdict", "methods", "measurements", "anomalies", "blocked", "accessible", "down",
             "unknown", "first_blocked_at", "last_blocked_at", "evidence_uids"),
            ((f.target_id, u.url, u.role, v.vantage.vantage_id, v.vantage.probe_asn, u.state,
              u.state_since, u.verdict, " ".join(m.method for m in u.methods), u.measurements,
              u.anomalies, u.blocked, u.accessible, u.down, u.unknown, u.first_blocked_at,
              u.last_blocked_at, " ".join(u.evidence_uids)) for f, v, u in urls)),
        "changes.csv": _csv(
            ("at", "change", "target_id", "url", "vantage_id", "from_state", "to_state",
             "method", "measurement_uid"),
            ((c.at, c.kind, c.target_id, c.url, c.vantage_id, c.from_state, c.to_state,
              c.method, c.measurement_uid) for c in report.changes)),
        "blocked-where.csv": _csv(
            ("vantage_id", "probe_cc", "probe_asn", "network", "blocked_targets", "since"),
            ((p.vantage.vantage_id, p.vantage.probe_cc, p.vantage.probe_asn,
              p.vantage.probe_network_name, " ".join(p.target_ids), p.since)
             for p in summary.blocked_where)),
        "methods-by-asn.csv": _csv(
            ("probe_asn", "network", "method", "blocked_measurements"),
            ((a.probe_asn, a.probe_network_name, method, count)
             for a in report.methods_by_asn for method, count in a.counts)),
        "blocked-per-day.csv": _csv(
            ("day", "list", "vantage_id", "blocked_urls"),
            ((p.day, p.list_name, p.vantage_id, p.blocked_urls) for p in report.overview)),
    }
