"""The vantage_degraded rule: a vantage whose latest round could not be judged is one incident."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from monitor.alerts.incidents import Affected
from monitor.alerts.store_tables import AlertTables

# Rounds looked at per pass: enough to find where each vantage's degraded streak began.
RECENT_RUNS = 500


def degraded_key(vantage_id: str) -> str:
    return f"degraded:{vantage_id}"


def degraded_vantages(runs: Iterable[Mapping[str, Any]]) -> dict[str, tuple[Affected, ...]]:
    """Pure: from finished runs newest first, the vantages whose latest judged-or-degraded round
    is degraded, each since the first round of that streak."""
    since: dict[str, str] = {}
    settled: set[str] = set()
    for run in runs:
        vantage = run["vantage_id"]
        if vantage in settled:
            continue
        if run["status"] == "degraded":
            since[vantage] = run["started_at"]
        else:
            settled.add(vantage)
    return {degraded_key(vantage): (Affected(vantage_id=vantage, probe_asn=None, since=start),)
            for vantage, start in since.items()}


def wanted_degraded(tables: AlertTables) -> dict[str, tuple[Affected, ...]]:
    """Runs on the store's thread: the degraded incidents the runs table asks for."""
    if not tables.table_exists("runs"):
        return {}
    return degraded_vantages(tables.rows(
        "SELECT vantage_id, status, started_at FROM runs WHERE status IN ('ok', 'degraded') "
        "ORDER BY started_at DESC, id DESC LIMIT ?", (RECENT_RUNS,)))
