"""deploy/grafana/blockmon-dashboard.json queries only metrics that blockmon's /metrics serves."""

from __future__ import annotations

import json
import re

from monitor.alerts.metrics import read_snapshot, render_metrics
from monitor.schema import PROBE_DATABASE
from monitor.state import Observation, decide_next_state
from monitor.store import open_store
from monitor.store.rows import measurement_row
from tests.conftest import PROJECT_ROOT
from tests.fixtures.store import synthetic_measurement

DASHBOARD = PROJECT_ROOT / "deploy" / "grafana" / "blockmon-dashboard.json"


def test_every_panel_queries_a_metric_and_label_of_the_real_metrics(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{tmp_path / 'probe.db'}", migration_sets=PROBE_DATABASE)
    try:
        measurement = synthetic_measurement(blocking="dns", accessible=False,
                                            blocking_method="dns.nxdomain")
        store.save_measurement(measurement, target_id="azattyq")
        row = measurement_row(measurement, target_id="azattyq", run_id=None, confirmation=0)
        decision = decide_next_state(None, Observation.from_row(row), confirmations_needed=1)
        store.save_state(decision.new_state_row, decision.transition)
        exposition = render_metrics(read_snapshot(store))
    finally:
        store.close()
    served = set(re.findall(r"^# TYPE (\w+) ", exposition, flags=re.MULTILINE))
    labels = set(re.findall(r"(\w+)=\"", exposition))
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    expressions = [target["expr"] for panel in document["panels"] for target in panel["targets"]]
    expressions.append(document["templating"]["list"][1]["definition"])
    used = {name for expr in expressions for name in re.findall(r"\bblockmon_\w+", expr)}
    assert used and used <= served, used - served
    used_labels = {label for expr in expressions
                   for label in re.findall(r"(\w+)\s*(?:=~|!=|=)\s*\"", expr)}
    used_labels |= {label for expr in expressions
                    for group in re.findall(r"by \(([^)]*)\)", expr)
                    for label in (part.strip() for part in group.split(","))}
    assert used_labels <= labels | {"channel", "status", "kind"}, used_labels - labels
    assert {"blockmon_target_state", "blockmon_measurements_total"} <= used
