"""Pure conversions between OONI measurements, store rows and the store's time format."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from typing import Any

# Column order of the measurements table (migrations 1 and 2).
MEASUREMENT_COLUMNS: tuple[str, ...] = (
    "uid", "run_id", "target_id", "list_name", "url", "vantage_id", "probe_cc", "probe_asn",
    "probe_network_name", "measured_at", "runtime", "blocking", "accessible", "blocking_method",
    "fingerprint_id", "anomaly", "confirmation", "control_failure", "json",
)

STATE_COLUMNS: tuple[str, ...] = (
    "vantage_id", "url", "target_id", "list_name", "state", "method", "since", "last_change",
    "last_measured_at", "last_uid", "probe_asn", "probe_cc", "streak", "recent",
)

TRANSITION_COLUMNS: tuple[str, ...] = (
    "vantage_id", "url", "target_id", "from_state", "to_state", "from_method", "method", "at",
    "measurement_uid",
)

OONI_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
STORE_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


# The `json` column: compact UTF-8 text. A measurement is a tree (built by the probe or parsed
# from JSON), so the encoder does not look for cycles, a fifth of its time on a 10 KB measurement.
_MEASUREMENT_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), check_circular=False)


class MeasurementFormatError(ValueError):
    """A measurement lacks a field the store needs; the message names the field."""


def store_time(moment: datetime | str) -> str:
    """Any accepted time as the store's text form `YYYY-MM-DDTHH:MM:SSZ` (UTC).

    Accepts datetimes (naive = UTC), OONI times ("2026-11-25 18:01:02"), ISO 8601 with offset or
    Z, and bare dates ("2026-11-25" = midnight UTC).
    """
    if isinstance(moment, str):
        text = moment.strip()
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not a date or time: {text!r} (use 2026-11-25 or "
                             "2026-11-25T18:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(STORE_TIME_FORMAT)


def _required(measurement: Mapping[str, Any], key: str) -> Any:
    value = measurement.get(key)
    if value in (None, ""):
        uid = measurement.get("measurement_uid", "?")
        raise MeasurementFormatError(f"measurement {uid}: missing {key!r}")
    return value


def _blocking_text(blocking: Any) -> str | None:
    # OONI's blocking is false, null or a string; the column keeps one type (text).
    if blocking is None:
        return None
    if blocking is False:
        return "false"
    return str(blocking)


def _accessible_int(accessible: Any) -> int | None:
    return None if accessible is None else int(bool(accessible))


def measurement_row(measurement: Mapping[str, Any], *, target_id: str | None,
                    run_id: str | None, confirmation: int) -> dict[str, Any]:
    """The `measurements` row of one OONI measurement (docs/measurement-format.md).

    target_id None falls back to annotations.target_id. Raises MeasurementFormatError when
    measurement_uid, input or measurement_start_time is missing.
    """
    uid = _required(measurement, "measurement_uid")
    url = _required(measurement, "input")
    measured_at = store_time(_required(measurement, "measurement_start_time"))
    annotations = measurement.get("annotations") or {}
    test_keys = measurement.get("test_keys") or {}
    fingerprint = test_keys.get("fingerprint") or {}
    blocking = test_keys.get("blocking")
    return {
        "uid": uid,
        "run_id": run_id,
        "target_id": target_id if target_id is not None else annotations.get("target_id"),
        "list_name": annotations.get("list"),
        "url": url,
        "vantage_id": annotations.get("vantage_id") or "local",
        "probe_cc": measurement.get("probe_cc"),
        "probe_asn": measurement.get("probe_asn"),
        "probe_network_name": measurement.get("probe_network_name"),
        "measured_at": measured_at,
        "runtime": measurement.get("test_runtime"),
        "blocking": _blocking_text(blocking),
        "accessible": _accessible_int(test_keys.get("accessible")),
        "blocking_method": test_keys.get("blocking_method"),
        "fingerprint_id": fingerprint.get("id"),
        "anomaly": int(isinstance(blocking, str)),
        "confirmation": confirmation,
        "control_failure": test_keys.get("control_failure"),
        "json": _MEASUREMENT_JSON.encode(measurement),
    }


def as_store_row(item: Mapping[str, Any]) -> dict[str, Any]:
    """A row for `save_measurements`: rows made by measurement_row pass through; whole OONI
    measurements (what the collector receives) are converted."""
    if "measurement_uid" in item and "json" not in item:
        return measurement_row(item, target_id=None, run_id=None, confirmation=0)
    return dict(item)


def blocking_from_text(text: str | None) -> str | bool | None:
    """The inverse of the blocking column's encoding: "false" -> False."""
    if text is None:
        return None
    return False if text == "false" else text


def target_row(target: Mapping[str, Any] | Any) -> dict[str, Any]:
    """The targets row of a target (a dict or a dataclass such as targets.model.Target)."""
    if is_dataclass(target) and not isinstance(target, type):
        target = asdict(target)
    if not isinstance(target, Mapping):
        raise TypeError(f"save_targets takes dicts or dataclasses, not {type(target).__name__}")
    urls = target.get("urls") or []
    briefing = target.get("briefing")
    return {
        "id": target["id"],
        "name": target.get("name") or target["id"],
        "list_name": target.get("list_name") or target.get("list"),
        "category_code": target.get("category_code"),
        "urls": json.dumps(list(urls), ensure_ascii=False),
        "briefing": None if briefing is None else json.dumps(briefing, ensure_ascii=False),
    }


def membership_rows(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The target_memberships rows of one targets row (from target_row): one per URL."""
    urls = [item.get("url") if isinstance(item, Mapping) else item
            for item in json.loads(record["urls"])]
    return [{"url": url, "list_name": record["list_name"] or "", "target_id": record["id"]}
            for url in dict.fromkeys(url for url in urls if isinstance(url, str) and url)]
