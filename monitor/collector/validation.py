"""Pure checks of what a probe sends the collector: bodies, batches and single measurements."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

# Patterns end in \Z, not $: "$" also matches before a trailing newline ("kz-1\n").
# The uid is built by the engine as "<YYYYmmddTHHMMSS.ffffffZ>_<CC>_webconnectivity_<hex>";
# we accept any short token of safe characters so a future engine's uid is not refused.
UID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{8,128}\Z")
VANTAGE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}\Z")
COUNTRY_PATTERN = re.compile(r"^[A-Z]{2}\Z")
ASN_PATTERN = re.compile(r"^AS[0-9]{1,10}\Z")
OONI_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

# Fields the collector can check, with the type a measurement must give them.
REQUIRED_STRINGS = ("measurement_uid", "input", "measurement_start_time", "probe_cc", "probe_asn")
OPTIONAL_STRINGS = (
    "report_id",
    "test_start_time",
    "probe_network_name",
    "resolver_ip",
    "resolver_asn",
    "resolver_network_name",
    "software_name",
    "software_version",
    "test_version",
    "data_format_version",
)
MAX_STRING_FIELD = 4096


@dataclass(frozen=True, slots=True)
class BatchLimits:
    """How much one request may carry and how far its timestamps may stray from now."""

    max_body_bytes: int = 8 * 1024 * 1024
    max_batch_length: int = 500
    max_measurement_bytes: int = 2 * 1024 * 1024
    # Probes with a bad clock are common (Raspberry Pi without RTC); allow a little skew.
    max_future_skew: timedelta = timedelta(minutes=10)
    # A probe offline for weeks still uploads its spool; older data is more likely a replay.
    max_age: timedelta = timedelta(days=60)


@dataclass(frozen=True, slots=True)
class RegisteredProbe:
    """Where the probe said it is when it enrolled (its `probes` row): the collector's truth."""

    vantage_id: str
    probe_cc: str
    probe_asn: str
    probe_network_name: str = ""


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a request was refused: the HTTP status, a message and the field at fault."""

    status: int
    error: str
    field: str | None = None
    index: int | None = None
    measurement_uid: str | None = None
    # Every refused measurement of the batch, this one first: the probe parks them all in one
    # go and re-sends the rest once (not once per refused measurement).
    others: tuple[Rejection, ...] = ()

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.error, "field": self.field}
        if self.index is not None:
            body["index"] = self.index
            body["measurement_uid"] = self.measurement_uid
            body["rejected"] = [
                {"index": item.index, "measurement_uid": item.measurement_uid,
                 "field": item.field, "error": item.error} for item in (self, *self.others)]
        return body


# Numbers a body may hold: finite, and integers within what every JSON reader and both
# databases hold exactly (2**53, JavaScript's safe integers). 1e400, NaN, Infinity, 2**70 and
# 5000-digit integers are refused with a 400, not stored or answered with a 500.
MAX_JSON_INTEGER = 2**53


def _not_a_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _bad_value(value: Any, path: str, *, no_control: bool) -> tuple[str, str] | None:
    """(problem, path) of the first value a body must not hold; iterative (deep bodies)."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, int):
            if abs(item) > MAX_JSON_INTEGER:
                return "is an integer beyond +-2**53", where
        elif isinstance(item, float):
            if item != item or item in (float("inf"), float("-inf")):
                return "is not a finite number", where
        elif isinstance(item, str):
            if no_control and any(ord(c) < 0x20 or ord(c) == 0x7F for c in item):
                return "holds a control character", where
            if any(0xD800 <= ord(c) <= 0xDFFF for c in item):
                return "holds an unpaired surrogate, not text", where
        elif isinstance(item, dict):
            stack.extend((child, f"{where}.{key}" if where else str(key))
                         for key, child in item.items())
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{index}]") for index, child in enumerate(item))
    return None


def parse_json_object(body: bytes, *, what: str = "body",
                      no_control: bool = False) -> dict[str, Any] | Rejection:
    """Decode a request body that must be one JSON object of finite, bounded numbers (and,
    with `no_control`, strings free of control characters: registration, check-in)."""
    try:
        decoded = json.loads(body.decode("utf-8"), parse_constant=_not_a_constant)
    except UnicodeDecodeError:
        return Rejection(400, f"{what} is not UTF-8", what)
    except json.JSONDecodeError as error:
        return Rejection(400, f"{what} is not valid JSON: {error.msg} at char {error.pos}", what)
    except RecursionError:
        return Rejection(400, f"{what} is nested too deeply", what)
    except ValueError as error:  # NaN, Infinity, or an integer of more than 4300 digits
        return Rejection(400, f"{what} holds a number out of range: {str(error)[:80]}", what)
    if not isinstance(decoded, dict):
        return Rejection(400, f"{what} must be a JSON object, got {type(decoded).__name__}", what)
    bad = _bad_value(decoded, "", no_control=no_control)
    if bad is not None:
        problem, where = bad
        return Rejection(400, problem, where[:200] or what)
    return decoded


def parse_ooni_time(value: str) -> datetime | None:
    try:
        return datetime.strptime(value, OONI_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None


# Seconds one measurement may have taken (a day: far beyond any timeout).
MAX_TEST_RUNTIME = 86400


def _has_host(url: str) -> bool:
    try:
        return bool(urlsplit(url).hostname)
    except ValueError:
        return False


def restamp(measurement: dict[str, Any], offset: timedelta, started: datetime) -> dict[str, Any]:
    """A copy dated by the collector's clock: the probe's times moved by `offset` (the collector's
    time minus the probe's at upload), the probe's own start time and the offset kept in
    annotations (docs/collector.md, "Probe clocks")."""
    moved = dict(measurement)
    moved["measurement_start_time"] = (started + offset).strftime(OONI_TIME_FORMAT)
    test_started = parse_ooni_time(str(measurement.get("test_start_time") or ""))
    if test_started is not None:
        moved["test_start_time"] = (test_started + offset).strftime(OONI_TIME_FORMAT)
    moved["annotations"] = {**(measurement.get("annotations") or {}),
                            "clock_skew_seconds": str(int(offset.total_seconds())),
                            "probe_measurement_start_time": measurement["measurement_start_time"]}
    return moved


def check_measurement(
    measurement: Any,
    *,
    index: int,
    probe: RegisteredProbe,
    now: datetime,
    limits: BatchLimits,
    clock_offset: timedelta | None = None,
) -> dict[str, Any] | Rejection:
    """Check one measurement and return the copy the collector stores (probe fields pinned).

    Where the measurement was taken is the registration's to say: a probe_cc, probe_asn or
    annotations.vantage_id other than the registered one is refused (403 naming the field,
    parked by the uploader); probe_network_name, a free label, is replaced by the registered one;
    probe_ip is always 127.0.0.1.
    """
    vantage_id = probe.vantage_id

    def reject(error: str, field: str, status: int = 400) -> Rejection:
        uid = measurement.get("measurement_uid") if isinstance(measurement, dict) else None
        return Rejection(
            status,
            error,
            f"measurements[{index}].{field}" if field else f"measurements[{index}]",
            index,
            uid if isinstance(uid, str) and len(uid) <= 128 else None,
        )

    if not isinstance(measurement, dict):
        return reject(f"must be an object, got {type(measurement).__name__}", "")
    for name in REQUIRED_STRINGS + OPTIONAL_STRINGS:
        value = measurement.get(name)
        if name not in measurement and name in REQUIRED_STRINGS:
            return reject("is missing", name)
        if value is None and name in OPTIONAL_STRINGS:
            continue
        if not isinstance(value, str):
            return reject(f"must be a string, got {type(value).__name__}", name)
        if len(value) > MAX_STRING_FIELD:
            return reject(f"is longer than {MAX_STRING_FIELD} characters", name)
        if "\x00" in value:  # PostgreSQL text cannot hold NUL: the insert would fail (500)
            return reject("contains a NUL character", name)
    if not UID_PATTERN.match(measurement["measurement_uid"]):
        return reject("must be 8-128 characters of A-Z a-z 0-9 . _ : -", "measurement_uid")
    if measurement.get("test_name") != "web_connectivity":
        return reject("must be 'web_connectivity'", "test_name")
    if not COUNTRY_PATTERN.match(measurement["probe_cc"]):
        return reject("must be a two-letter upper-case country code", "probe_cc")
    if not ASN_PATTERN.match(measurement["probe_asn"]):
        return reject("must look like AS1234", "probe_asn")
    if not measurement["input"].startswith(("http://", "https://")) or not _has_host(
            measurement["input"]):
        return reject("must be an http:// or https:// URL with a host", "input")

    started = parse_ooni_time(measurement["measurement_start_time"])
    if started is None:
        return reject("must be 'YYYY-MM-DD HH:MM:SS' (UTC)", "measurement_start_time")
    if clock_offset is not None and abs(clock_offset) > limits.max_future_skew:
        # A skewed clock, not a forgery: the probe's clock at upload is as far off as its
        # stamps; re-dated, the times must still fall inside the window (a replay does not).
        if not isinstance(measurement.get("annotations", {}), dict):
            return reject("must be an object", "annotations")
        measurement = restamp(measurement, clock_offset, started)
        started = started + clock_offset
    if started > now + limits.max_future_skew:
        return reject("is in the future", "measurement_start_time")
    if started < now - limits.max_age:
        return reject(f"is older than {limits.max_age.days} days", "measurement_start_time")

    runtime = measurement.get("test_runtime")
    if runtime is not None and (
        isinstance(runtime, bool) or not isinstance(runtime, int | float)
        or not 0 <= runtime <= MAX_TEST_RUNTIME
    ):
        return reject(f"must be a number from 0 to {MAX_TEST_RUNTIME}", "test_runtime")
    annotations = measurement.get("annotations", {})
    if not isinstance(annotations, dict):
        return reject("must be an object", "annotations")
    claimed_vantage = annotations.get("vantage_id")
    if claimed_vantage is not None and claimed_vantage != vantage_id:
        # A probe submits only as itself: its token names it, the body cannot.
        return reject(
            f"is {str(claimed_vantage)[:64]!r} but this token belongs to {vantage_id!r}",
            "annotations.vantage_id",
            403,
        )
    for name, registered in (("probe_cc", probe.probe_cc), ("probe_asn", probe.probe_asn)):
        # ZZ/AS0 is a probe that does not know; the collector may have looked it up (docs/asn.md).
        if measurement[name] != registered and measurement[name] not in ("ZZ", "AS0"):
            return reject(
                f"is {measurement[name]!r} but probe {vantage_id!r} registered {registered!r}; "
                "register again from the new network", name, 403)
    test_keys = measurement.get("test_keys")
    if not isinstance(test_keys, dict):
        return reject("must be an object", "test_keys")
    # The store copies these into columns and the state machine reads them: a wrong type would
    # crash the insert (500) or be read as another verdict ("no" as accessible, true as a block).
    column_problem = _stored_column_problem(annotations, test_keys)
    if column_problem is not None:
        return reject(*column_problem)

    stored = dict(measurement)
    stored["probe_network_name"] = probe.probe_network_name
    stored["probe_cc"], stored["probe_asn"] = probe.probe_cc, probe.probe_asn
    stored["annotations"] = {**annotations, "vantage_id": vantage_id}
    # Privacy: the collector never keeps a probe's address (OONI scrubs it the same way).
    stored["probe_ip"] = "127.0.0.1"
    return stored


def _optional_string(value: Any) -> bool:
    return value is None or (
        isinstance(value, str) and len(value) <= MAX_STRING_FIELD and "\x00" not in value)


def _stored_column_problem(
    annotations: dict[str, Any], test_keys: dict[str, Any]
) -> tuple[str, str] | None:
    """(error, field) for the first value the store would take into a column with a wrong type."""
    string_text = f"must be a string of at most {MAX_STRING_FIELD} characters (no NUL) or null"
    for name in ("target_id", "list"):
        if not _optional_string(annotations.get(name)):
            return string_text, f"annotations.{name}"
    blocking = test_keys.get("blocking")
    if not (blocking is None or blocking is False or _optional_string(blocking)):
        return "must be false, null or a string", "test_keys.blocking"
    accessible = test_keys.get("accessible")
    if accessible is not None and not isinstance(accessible, bool):
        return "must be true, false or null", "test_keys.accessible"
    for name in ("blocking_method", "control_failure"):
        if not _optional_string(test_keys.get(name)):
            return string_text, f"test_keys.{name}"
    fingerprint = test_keys.get("fingerprint")
    if fingerprint is not None:
        if not isinstance(fingerprint, dict):
            return "must be an object or null", "test_keys.fingerprint"
        if not _optional_string(fingerprint.get("id")):
            return string_text, "test_keys.fingerprint.id"
    return None


def check_stored_sizes(
    measurements: list[dict[str, Any]], serialized: list[str], limits: BatchLimits
) -> Rejection | None:
    """Refuse the batch if one measurement's stored JSON exceeds the per-measurement cap or is
    not storable text (an unpaired surrogate).

    Checked on the JSON the store writes anyway, so the collector serialises each measurement once.
    """
    for index, text in enumerate(serialized):
        if len(text) > limits.max_measurement_bytes:
            return Rejection(
                413,
                f"is larger than {limits.max_measurement_bytes} bytes",
                f"measurements[{index}]",
                index,
                measurements[index]["measurement_uid"],
            )
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as error:
                # A lone surrogate (JSON "\ud800") parses but no database can store it.
                return Rejection(
                    400,
                    f"holds an unpaired surrogate \\u{ord(text[error.start]):04x}, not text",
                    f"measurements[{index}]",
                    index,
                    measurements[index]["measurement_uid"],
                )
    return None


def check_batch(
    body: dict[str, Any], *, probe: RegisteredProbe, now: datetime, limits: BatchLimits,
    clock_offset: timedelta | None = None,
) -> list[dict[str, Any]] | Rejection:
    """Check a whole upload; one bad measurement refuses the batch (all or nothing), and the
    refusal lists every bad one."""
    measurements = body.get("measurements")
    if not isinstance(measurements, list):
        return Rejection(400, "must be a list of measurements", "measurements")
    if not measurements:
        return Rejection(400, "must not be empty", "measurements")
    if len(measurements) > limits.max_batch_length:
        return Rejection(
            413, f"holds {len(measurements)} items, at most {limits.max_batch_length}", "measurements"
        )
    checked: list[dict[str, Any]] = []
    seen: set[str] = set()
    refused: list[Rejection] = []
    for index, measurement in enumerate(measurements):
        result = check_measurement(
            measurement, index=index, probe=probe, now=now, limits=limits,
            clock_offset=clock_offset,
        )
        if isinstance(result, Rejection):
            refused.append(result)
            continue
        # The same uid twice in one batch is stored once, like a batch sent twice.
        if result["measurement_uid"] in seen:
            continue
        seen.add(result["measurement_uid"])
        checked.append(result)
    if refused:
        # The first refusal's status: a 403 (another network) is not made a 400 by a later one.
        return replace(refused[0], others=tuple(refused[1:]))
    return checked


def check_registration(body: dict[str, Any]) -> dict[str, str] | Rejection:
    """Check a probe's enrolment request: secret, the vantage id it asks for, where it is."""
    secret = body.get("enrolment_secret")
    if not isinstance(secret, str) or not secret or len(secret) > 256:
        return Rejection(400, "must be the secret string the operator gave you", "enrolment_secret")
    vantage = body.get("vantage_id")
    if not isinstance(vantage, str) or not VANTAGE_PATTERN.match(vantage):
        return Rejection(
            400, "must be 1-64 characters of a-z 0-9 . _ - starting with a letter or digit", "vantage_id"
        )
    cc = body.get("probe_cc", "ZZ")
    if not isinstance(cc, str) or not COUNTRY_PATTERN.match(cc):
        return Rejection(400, "must be a two-letter upper-case country code", "probe_cc")
    asn = body.get("probe_asn", "AS0")
    if not isinstance(asn, str) or not ASN_PATTERN.match(asn):
        return Rejection(400, "must look like AS1234", "probe_asn")
    network = body.get("probe_network_name", "")
    if not isinstance(network, str) or len(network) > 256:
        return Rejection(400, "must be a string of at most 256 characters", "probe_network_name")
    return {
        "enrolment_secret": secret,
        "vantage_id": vantage,
        "probe_cc": cc,
        "probe_asn": asn,
        "probe_network_name": network,
    }
