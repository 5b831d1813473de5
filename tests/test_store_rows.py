"""measurement_row and store_time: the pure mapping from OONI measurements to store rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from monitor.store.rows import (
    MEASUREMENT_COLUMNS,
    MeasurementFormatError,
    blocking_from_text,
    measurement_row,
    store_time,
)
from tests.fixtures.store import synthetic_measurement


def test_row_has_every_column_and_the_whole_measurement() -> None:
    measurement = synthetic_measurement(blocking="tcp_ip", accessible=False,
                                        blocking_method="tcp.reset", target_id="azattyq")
    row = measurement_row(measurement, target_id=None, run_id="run-1", confirmation=1)
    assert tuple(row) == MEASUREMENT_COLUMNS
    assert row["target_id"] == "azattyq"  # from the annotations
    assert (row["blocking"], row["accessible"], row["anomaly"]) == ("tcp_ip", 0, 1)
    assert row["blocking_method"] == "tcp.reset"
    assert (row["run_id"], row["confirmation"]) == ("run-1", 1)
    assert row["runtime"] == 0.84
    assert json.loads(row["json"]) == measurement


def test_json_column_is_compact_utf8_json_as_before() -> None:
    # The bytes readers and older stores hold: json.dumps(ensure_ascii=False, compact separators).
    measurement = synthetic_measurement(blocking="http-diff", accessible=False)
    measurement["test_keys"]["x_analysis_notes"] = ["http: «Доступ ограничен» — 1.5e-07 s", "\u2028"]
    measurement["test_runtime"] = 0.1 + 0.2
    row = measurement_row(measurement, target_id=None, run_id=None, confirmation=0)
    assert row["json"] == json.dumps(measurement, ensure_ascii=False, separators=(",", ":"))


def test_row_without_annotations_defaults_the_vantage() -> None:
    measurement = synthetic_measurement()
    del measurement["annotations"]
    row = measurement_row(measurement, target_id="t", run_id=None, confirmation=0)
    assert (row["vantage_id"], row["target_id"], row["list_name"]) == ("local", "t", None)


@pytest.mark.parametrize("field", ["measurement_uid", "input", "measurement_start_time"])
def test_a_missing_required_field_is_named(field: str) -> None:
    measurement = synthetic_measurement(uid="uid-1")
    measurement[field] = None
    with pytest.raises(MeasurementFormatError, match=f"missing '{field}'"):
        measurement_row(measurement, target_id=None, run_id=None, confirmation=0)


@pytest.mark.parametrize(("given", "expected"), [
    ("2026-11-25 18:01:02", "2026-11-25T18:01:02Z"),
    ("2026-11-25T18:01:02Z", "2026-11-25T18:01:02Z"),
    ("2026-11-25T23:01:02+05:00", "2026-11-25T18:01:02Z"),
    ("2026-11-25", "2026-11-25T00:00:00Z"),
    (datetime(2026, 11, 25, 18, 1, 2), "2026-11-25T18:01:02Z"),
    (datetime(2026, 11, 25, 18, 1, 2, tzinfo=UTC), "2026-11-25T18:01:02Z"),
    (datetime(2026, 11, 25, 12, 1, 2, tzinfo=timezone(timedelta(hours=-6))),
     "2026-11-25T18:01:02Z"),
])
def test_store_time(given: str | datetime, expected: str) -> None:
    assert store_time(given) == expected


def test_store_time_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="not a date or time: 'last tuesday'"):
        store_time("last tuesday")


def test_blocking_text_round_trip() -> None:
    assert blocking_from_text("false") is False
    assert blocking_from_text(None) is None
    assert blocking_from_text("dns") == "dns"
