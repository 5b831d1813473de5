"""The read side of the store for reports and the dashboard: aggregated in SQL, both backends."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.store.base import Store
from monitor.store.rows import store_time
from probes.analysis_throttle import judge_throttling
from targets.model import BriefingClaim, Target, TargetURL

# How one measurement row counts, as SQL over the verdict columns (docs/reports.md explains):
# blocked = the analysis named a kind of blocking; down = no blocking yet not accessible (the
# site fails for the control too); unknown = the analysis could not tell (no control).
BLOCKED_SQL = "(blocking IS NOT NULL AND blocking <> 'false')"
ACCESSIBLE_SQL = "(blocking = 'false' AND accessible = 1)"
DOWN_SQL = "(blocking = 'false' AND (accessible IS NULL OR accessible = 0))"
UNKNOWN_SQL = "(blocking IS NULL)"

# Rows per `uid IN (...)` statement: far below SQLite's 32,766 and PostgreSQL's 65,535 binds.
_UIDS_PER_STATEMENT = 500
_UID_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,128}")


class ReadDatabase:
    """Read-only SQL over a store's Database, written once with `:name` parameters.

        db = ReadDatabase(store)
        load_daily_counts(db, "2026-11-01", "2026-12-01")
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.database = store.database
        self.dialect = store.database.dialect

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.database.rows(sql, dict(params or {}))


# ---- rows ------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class DailyCounts:
    """Measurements of one URL from one vantage on one UTC day, counted by outcome."""

    target_id: str | None
    url: str
    vantage_id: str
    day: str  # YYYY-MM-DD
    probe_cc: str | None
    probe_asn: str | None
    probe_network_name: str | None
    measurements: int
    anomalies: int
    blocked: int
    accessible: int
    down: int
    unknown: int
    first_blocked_at: str | None
    last_blocked_at: str | None
    first_blocked_uid: str | None
    last_blocked_uid: str | None
    last_uid: str
    last_measured_at: str


@dataclass(frozen=True, slots=True)
class MethodCount:
    """How often one blocking method (and blockpage fingerprint) was seen for a URL and vantage."""

    target_id: str | None
    url: str
    vantage_id: str
    probe_asn: str | None
    probe_network_name: str | None
    method: str
    fingerprint_id: str | None
    measurements: int
    first_seen_at: str
    last_seen_at: str
    last_uid: str


@dataclass(frozen=True, slots=True)
class StateAt:
    """The monitor's state of one (vantage, URL) as of a moment: its last transition before it."""

    vantage_id: str
    url: str
    target_id: str | None
    state: str
    method: str | None
    since: str
    measurement_uid: str | None


@dataclass(frozen=True, slots=True)
class Transition:
    id: int
    vantage_id: str
    url: str
    target_id: str | None
    from_state: str | None
    to_state: str
    method: str | None
    at: str
    measurement_uid: str | None


@dataclass(frozen=True, slots=True)
class MeasurementOutcome:
    """The verdict columns of one measurement."""

    uid: str
    measured_at: str
    blocking: str | None
    accessible: int | None
    blocking_method: str | None

    @property
    def outcome(self) -> str:
        return outcome_of(self.blocking, self.accessible)


@dataclass(frozen=True, slots=True)
class EvidenceDetail:
    """What a report quotes from one stored measurement's JSON."""

    uid: str
    tls_issuer: str | None
    fingerprint: dict[str, Any] | None
    sni_differential_passed: bool
    failures: tuple[str, ...]
    # A throttled measurement's rates, bytes/s: probe, control, same-network baseline.
    throughput_rates: tuple[float | None, float | None, float | None] | None = None


def outcome_of(blocking: str | None, accessible: int | None) -> str:
    """blocked / accessible / down / unknown, the same rule as the *_SQL expressions above."""
    if blocking is None:
        return "unknown"
    if blocking != "false":
        return "blocked"
    return "accessible" if accessible == 1 else "down"


def _int(value: Any) -> int:
    return int(value or 0)


# ---- report queries -----------------------------------------------------------------------

_DAILY_COLUMNS = (
    "SELECT target_id, url, vantage_id, substr(measured_at, 1, 10) AS day, "
    "MAX(probe_cc) AS probe_cc, MAX(probe_asn) AS probe_asn, "
    "MAX(probe_network_name) AS probe_network_name, COUNT(*) AS measurements, "
    "SUM(anomaly) AS anomalies, "
    f"SUM(CASE WHEN {BLOCKED_SQL} THEN 1 ELSE 0 END) AS blocked, "
    f"SUM(CASE WHEN {ACCESSIBLE_SQL} THEN 1 ELSE 0 END) AS accessible, "
    f"SUM(CASE WHEN {DOWN_SQL} THEN 1 ELSE 0 END) AS down, "
    f"SUM(CASE WHEN {UNKNOWN_SQL} THEN 1 ELSE 0 END) AS unknown, "
    f"MIN(CASE WHEN {BLOCKED_SQL} THEN measured_at END) AS first_blocked_at, "
    f"MAX(CASE WHEN {BLOCKED_SQL} THEN measured_at END) AS last_blocked_at, "
    f"MIN(CASE WHEN {BLOCKED_SQL} THEN uid END) AS first_blocked_uid, "
    f"MAX(CASE WHEN {BLOCKED_SQL} THEN uid END) AS last_blocked_uid, "
    "MAX(uid) AS last_uid, MAX(measured_at) AS last_measured_at FROM measurements "
)
_COUNTED = ("measurements", "anomalies", "blocked", "accessible", "down", "unknown")


def _url_or_target(target_id: str, urls: Sequence[str]) -> tuple[str, dict[str, str]]:
    """A target's rows: measured under its id, or of one of its URLs (under another list's)."""
    names = {f"url{index}": url for index, url in enumerate(urls[:_UIDS_PER_STATEMENT])}
    clause = "target_id = :target_id"
    if names:
        clause = f"({clause} OR url IN ({', '.join(':' + name for name in names)}))"
    return clause, {"target_id": target_id, **names}


def load_daily_counts(db: ReadDatabase, since: str, until: str,
                      target_id: str | None = None,
                      urls: Sequence[str] = ()) -> list[DailyCounts]:
    """One row per (target, URL, vantage, day) with measured_at in [since, until): one scan.
    With `target_id`, that target's rows and those of its `urls` measured under another."""
    params = {"since": store_time(since), "until": store_time(until)}
    where = "measured_at >= :since AND measured_at < :until"
    if target_id is not None:
        clause, names = _url_or_target(target_id, urls)
        where = f"{clause} AND {where}"
        params.update(names)
    rows = db.rows(f"{_DAILY_COLUMNS} WHERE {where} "
                   "GROUP BY target_id, url, vantage_id, substr(measured_at, 1, 10)", params)
    return [DailyCounts(**{**row, **{key: _int(row[key]) for key in _COUNTED}}) for row in rows]


def load_method_counts(db: ReadDatabase, since: str, until: str) -> list[MethodCount]:
    """Blocking methods seen per (URL, vantage, ASN, fingerprint) in [since, until)."""
    rows = db.rows(
        "SELECT target_id, url, vantage_id, probe_asn, MAX(probe_network_name) AS "
        "probe_network_name, blocking_method AS method, fingerprint_id, COUNT(*) AS measurements, "
        "MIN(measured_at) AS first_seen_at, MAX(measured_at) AS last_seen_at, "
        "MAX(uid) AS last_uid FROM measurements "
        "WHERE measured_at >= :since AND measured_at < :until AND blocking_method IS NOT NULL "
        f"AND {BLOCKED_SQL} "
        "GROUP BY target_id, url, vantage_id, probe_asn, blocking_method, fingerprint_id",
        {"since": store_time(since), "until": store_time(until)},
    )
    return [MethodCount(**{**row, "measurements": _int(row["measurements"])}) for row in rows]


def _last_transitions(db: ReadDatabase, moment: str, changes_only: bool) -> list[dict[str, Any]]:
    # One index seek per (vantage, URL) of target_state (every pair with transitions has one),
    # not a sort of the whole transitions table: flapping sites record hundreds of thousands.
    condition = "AND (s.from_state IS NULL OR s.from_state <> s.to_state)" if changes_only else ""
    return db.rows(
        "SELECT t.vantage_id, t.url, t.target_id, t.to_state, t.method, t.at, t.measurement_uid "
        "FROM target_state p JOIN state_transitions t ON t.id = ("
        "SELECT s.id FROM state_transitions s WHERE s.url = p.url AND s.vantage_id = p.vantage_id "
        f"AND s.at < :moment {condition} ORDER BY s.at DESC, s.id DESC LIMIT 1)",
        {"moment": store_time(moment)},
    )


def load_states_at(db: ReadDatabase, moment: str) -> list[StateAt]:
    # The one rule for "since" (docs/reports.md): a block began at the first anomaly of the
    # streak that confirmed it, not at the confirmation. monitor.state.decide_next_state keeps
    # it in target_state.since (what status, the dashboard and alerts read); here it is read
    # back from the transitions: the anomaly just before the one into "blocked".
    """Each (vantage, URL)'s state as of `moment`: its last transition before then.

    `since` is when that state began: a method change while blocked (blocked -> blocked) is a
    transition too, but the block began at the last change of state, and a block at the first
    anomaly of the streak that confirmed it, as target_state says.
    """
    began = {(row["vantage_id"], row["url"]): row["at"]
             for row in _last_transitions(db, moment, changes_only=True)}
    for row in _last_transitions(db, moment, changes_only=True):
        if row["to_state"] == "blocked":
            key = (row["vantage_id"], row["url"])
            before = db.rows(
                "SELECT to_state, at FROM state_transitions WHERE vantage_id = :vantage AND "
                "url = :url AND at < :at ORDER BY at DESC, id DESC LIMIT 1",
                {"vantage": key[0], "url": key[1], "at": row["at"]})
            if before and before[0]["to_state"] == "anomaly":
                began[key] = before[0]["at"]
    return [StateAt(vantage_id=row["vantage_id"], url=row["url"], target_id=row["target_id"],
                    state=row["to_state"], method=row["method"],
                    since=began.get((row["vantage_id"], row["url"]), row["at"]),
                    measurement_uid=row["measurement_uid"])
            for row in _last_transitions(db, moment, changes_only=False)]


def load_transitions_between(db: ReadDatabase, since: str, until: str) -> list[Transition]:
    """Transitions in [since, until) that start or end a block (what a report lists)."""
    rows = db.rows(
        "SELECT id, vantage_id, url, target_id, from_state, to_state, method, at, "
        "measurement_uid FROM state_transitions WHERE at >= :since AND at < :until "
        "AND ((to_state = 'blocked' AND (from_state IS NULL OR from_state <> 'blocked')) "
        "OR (from_state = 'blocked' AND to_state <> 'blocked')) ORDER BY at, id",
        {"since": store_time(since), "until": store_time(until)},
    )
    return [Transition(**{**row, "id": int(row["id"])}) for row in rows]


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), _UIDS_PER_STATEMENT):
        yield items[start:start + _UIDS_PER_STATEMENT]


def _uid_rows(db: ReadDatabase, columns: str, uids: Iterable[str]) -> list[dict[str, Any]]:
    wanted = sorted(set(uids))
    found: list[dict[str, Any]] = []
    for chunk in _chunks(wanted):
        names = {f"uid{index}": uid for index, uid in enumerate(chunk)}
        placeholders = ", ".join(f":{name}" for name in names)
        found += db.rows(f"SELECT {columns} FROM measurements WHERE uid IN ({placeholders})",
                         names)
    return found


def load_outcomes(db: ReadDatabase, uids: Iterable[str]) -> dict[str, MeasurementOutcome]:
    """The verdict columns of the given measurements, by uid."""
    rows = _uid_rows(db, "uid, measured_at, blocking, accessible, blocking_method", uids)
    return {row["uid"]: MeasurementOutcome(**row) for row in rows}


def _objects(value: Any) -> list[Mapping[str, Any]]:
    """The objects of a list in a measurement; anything else (a probe's bug) is left out."""
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def extract_evidence(uid: str, measurement: Mapping[str, Any]) -> EvidenceDetail:
    """The interception issuer, blockpage fingerprint, SNI retry and failures of a measurement.

    Uploaded JSON is only checked where the store takes columns from it: one malformed list
    here must not stop the report of every target."""
    test_keys = _object(measurement.get("test_keys"))
    issuer = None
    for handshake in _objects(test_keys.get("tls_handshakes")):
        chain = _objects(handshake.get("certificate_chain"))
        if chain and isinstance(chain[0].get("issuer"), str) and chain[0]["issuer"]:
            issuer = chain[0]["issuer"]
            break
    fingerprint = test_keys.get("fingerprint")
    retries = _objects(test_keys.get("sni_differential"))
    failures = [test_keys.get("dns_experiment_failure"), test_keys.get("http_experiment_failure")]
    failures += [_object(entry.get("status")).get("failure")
                 for entry in _objects(test_keys.get("tcp_connect"))]
    failures += [handshake.get("failure")
                 for handshake in _objects(test_keys.get("tls_handshakes"))]
    return EvidenceDetail(
        uid=uid, tls_issuer=issuer,
        fingerprint=dict(fingerprint) if isinstance(fingerprint, Mapping) and fingerprint
        else None,
        sni_differential_passed=any(retry.get("failure") is None for retry in retries),
        failures=tuple(dict.fromkeys(str(failure) for failure in failures if failure)),
        throughput_rates=_throughput_rates(test_keys))


def _throughput_rates(test_keys: Mapping[str, Any]
                      ) -> tuple[float | None, float | None, float | None] | None:
    throughput = test_keys.get("x_throughput")
    if not isinstance(throughput, Mapping):
        return None
    judgement = judge_throttling(throughput)
    if judgement.probe_rate is None:
        return None
    return (judgement.probe_rate, judgement.control_rate, judgement.baseline_rate)


def load_evidence(db: ReadDatabase, uids: Iterable[str]) -> dict[str, EvidenceDetail]:
    """EvidenceDetail of a few measurements (only these JSON documents are parsed)."""
    return {row["uid"]: extract_evidence(row["uid"], json.loads(row["json"]))
            for row in _uid_rows(db, "uid, json", uids)}


def load_measurement_documents(db: ReadDatabase, uids: Iterable[str]) -> dict[str, str]:
    """The stored JSON text of the given measurements, by uid (for evidence export)."""
    return {row["uid"]: row["json"] for row in _uid_rows(db, "uid, json", uids)}


def _json_field(value: Any) -> Any:
    if value is None or isinstance(value, (dict, list)):
        return value
    return json.loads(value)


def target_from_row(row: Mapping[str, Any]) -> Target:
    """A Target as saved in the targets table (urls and briefing stored as JSON)."""
    urls = tuple(TargetURL(url=item["url"], role=item.get("role") or "home", since=item.get("since"),
                           until=item.get("until"), note=item.get("note"))
                 if isinstance(item, dict) else TargetURL(str(item), "home")
                 for item in _json_field(row.get("urls")) or [])
    briefing_doc = _json_field(row.get("briefing"))
    briefing = None
    if briefing_doc:
        briefing = BriefingClaim(**{key: briefing_doc.get(key) for key in
                                    ("section", "quote", "line", "period", "claim")})
    return Target(id=row["id"], name=row["name"], category_code=row.get("category_code") or "",
                  urls=urls, briefing=briefing, control=False,
                  list_name=row.get("list_name") or "")


def load_targets(db: ReadDatabase) -> list[Target]:
    """The registry as last saved in the store (the collector's view of its probes' targets)."""
    rows = db.rows("SELECT id, name, list_name, category_code, urls, briefing FROM targets "
                   "ORDER BY id")
    return [target_from_row(row) for row in rows]


# ---- dashboard queries ----------------------------------------------------------------------

def load_target_row(db: ReadDatabase, target_id: str) -> Target | None:
    rows = db.rows("SELECT id, name, list_name, category_code, urls, briefing FROM targets "
                   "WHERE id = :id", {"id": target_id})
    return target_from_row(rows[0]) if rows else None


def load_recent_measurements(db: ReadDatabase, target_id: str, limit: int = 20,
                             urls: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The latest measurements of a target and its `urls` (verdict columns only, no JSON)."""
    clause, names = _url_or_target(target_id, urls)
    return db.rows(
        "SELECT uid, url, vantage_id, probe_asn, measured_at, blocking, accessible, "
        "blocking_method, fingerprint_id, anomaly, confirmation, control_failure "
        f"FROM measurements WHERE {clause} ORDER BY measured_at DESC, uid DESC "
        "LIMIT :limit", {**names, "limit": limit})


def is_uid(text: str) -> bool:
    """Whether text can be a measurement uid (also safe as a file name)."""
    return bool(_UID_PATTERN.fullmatch(text)) and ".." not in text
