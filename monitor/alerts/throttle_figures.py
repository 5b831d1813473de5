"""The rates a throttled block's alert carries: probe, control and baseline, from its evidence."""

from __future__ import annotations

import json
from collections.abc import Iterable

from monitor.alerts.incidents import Rates
from monitor.alerts.rules import UrlStatus
from monitor.alerts.store_tables import AlertTables
from probes.analysis_throttle import judge_throttling


def throttled_rates(tables: AlertTables, blocks: Iterable[UrlStatus]) -> dict[str, Rates]:
    """Evidence uid -> (probe, control, baseline) bytes/s, for the blocks named *.throttled."""
    uids = sorted({status.last_uid for status in blocks
                   if status.last_uid and (status.method or "").endswith(".throttled")})
    rates: dict[str, Rates] = {}
    for uid in uids:
        rows = tables.rows("SELECT json FROM measurements WHERE uid = ?", (uid,))
        if not rows:
            continue
        try:
            measurement = json.loads(rows[0]["json"])
        except (TypeError, ValueError):
            continue  # a stored row that is no JSON carries no figures; the alert still goes
        judgement = judge_throttling((measurement.get("test_keys") or {}).get("x_throughput"))
        rates[uid] = (judgement.probe_rate, judgement.control_rate, judgement.baseline_rate)
    return rates
