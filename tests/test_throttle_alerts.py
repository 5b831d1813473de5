"""A confirmed throttled block's alert carries the rates: probe, control and baseline."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from monitor.alerts.evaluate import EvaluationConfig, evaluate_alerts
from monitor.collector.intake import save_and_decide
from monitor.store.rows import measurement_row
from tests.fixtures.store import synthetic_measurement

GOLDEN = Path(__file__).parent / "golden" / "tls_throttled.json"


def test_a_throttled_block_alert_carries_probe_control_and_baseline_rates(sqlite_store) -> None:
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    measurement = synthetic_measurement(url="https://throttle.lab.test/large", target_id="azattyq",
                                        measured_at="2026-12-01 10:00:00", blocking="http-failure",
                                        accessible=False, blocking_method="tls.throttled")
    measurement["test_keys"]["x_throughput"] = golden["test_keys"]["x_throughput"]
    row = measurement_row(measurement, target_id="azattyq", run_id=None, confirmation=0)
    save_and_decide(sqlite_store, [row], confirmations_needed=1)

    [alert_id] = evaluate_alerts(sqlite_store, EvaluationConfig(), datetime(2026, 12, 1, 10, 5, tzinfo=UTC))
    [stored] = sqlite_store.database.rows("SELECT payload FROM alerts WHERE id = ?", (alert_id,))
    payload = json.loads(stored["payload"])
    assert payload["kind"] == "block_confirmed"
    rates = payload["where"][0]["rates"]
    throughput = golden["test_keys"]["x_throughput"]
    assert rates["probe"] == throughput["probe"]["rate"] and rates["control"] == throughput["control"]["rate"]
    assert rates["baseline"] >= 4 * rates["probe"]
    assert "by tls.throttled at " in payload["summary"] and "kbit/s (control " in payload["summary"]


def test_a_report_quotes_a_throttled_page_with_its_rates_and_a_chart() -> None:
    from monitor.store.queries import extract_evidence
    from reports.model import ThrottleRates
    from reports.render_html import template_environment

    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    detail = extract_evidence("uid-1", {"test_keys": golden["test_keys"]})
    throughput = golden["test_keys"]["x_throughput"]
    assert detail.throughput_rates is not None
    assert detail.throughput_rates[:2] == (throughput["probe"]["rate"], throughput["control"]["rate"])
    rates = ThrottleRates(*detail.throughput_rates)
    probe_width, control_width, baseline_width = (width for _, _, width in rates.bars())
    assert 0 < probe_width < min(control_width, baseline_width)
    assert max(control_width, baseline_width) == 100.0
    partial = template_environment().get_template("throttle_rates.html.j2")
    html = partial.render(method={"rates": rates})
    assert "<svg" in html and "kbit/s" in html and "Mbit/s" in html and "probe" in html


def test_the_dashboard_sets_the_probe_rate_beside_the_control_rate() -> None:
    from reports.dashboard.evidence import compare_observations

    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    pairs = {pair.step: pair for pair in compare_observations({"test_keys": golden["test_keys"]})}
    rate = pairs["Rate"]
    assert "kbit/s over" in rate.probe and "same-network baseline" in rate.probe and "Mbit/s" in rate.control
    assert "Rate" not in {pair.step for pair in compare_observations({"test_keys": {}})}
