"""Current states for `status` and the overview: filtered through list memberships, blocked first."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from monitor.store.queries import ReadDatabase, load_target_row


@dataclass(frozen=True, slots=True)
class StateFilters:
    """The overview's and `status`'s filters; None = any. A list, category or target matches a
    URL through its memberships (every list and target it belongs to), not only the target that
    measured it last."""

    list_name: str | None = None
    category: str | None = None
    asn: str | None = None
    state: str | None = None
    method: str | None = None
    target_id: str | None = None
    vantage_id: str | None = None


# Blocked first, then what may become blocked, then the rest (docs/reports.md, "Order").
STATE_ORDER: tuple[str, ...] = ("blocked", "anomaly", "intermittent", "down", "unknown",
                                "accessible")
_STATE_RANK_SQL = ("CASE s.state " + " ".join(f"WHEN '{state}' THEN {rank}"
                                              for rank, state in enumerate(STATE_ORDER))
                   + f" ELSE {len(STATE_ORDER)} END")


def state_rank(state: str | None) -> int:
    """Where a state sorts: blocked first (the same order as the SQL above)."""
    return STATE_ORDER.index(state) if state in STATE_ORDER else len(STATE_ORDER)


def _member(condition: str) -> str:
    return f"EXISTS (SELECT 1 FROM target_memberships m WHERE m.url = s.url AND {condition})"


_IN_CATEGORY = "m.target_id IN (SELECT c.id FROM targets c WHERE c.category_code = :category)"


def _state_where(filters: StateFilters) -> tuple[str, dict[str, Any]]:
    clauses, params = [], {}
    for expression, name, value in (
        (f"(COALESCE(s.list_name, t.list_name) = :list_name OR "
         f"{_member('m.list_name = :list_name')})", "list_name", filters.list_name),
        (f"(t.category_code = :category OR {_member(_IN_CATEGORY)})", "category",
         filters.category),
        ("s.probe_asn = :asn", "asn", filters.asn),
        ("s.state = :state", "state", filters.state),
        ("s.method = :method", "method", filters.method),
        (f"(s.target_id = :target_id OR {_member('m.target_id = :target_id')})", "target_id",
         filters.target_id),
        ("s.vantage_id = :vantage_id", "vantage_id", filters.vantage_id),
    ):
        if value:
            clauses.append(expression)
            params[name] = value
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


def load_memberships(db: ReadDatabase, urls: Iterable[str] | None = None) -> dict[
        str, list[tuple[str, str]]]:
    """url -> [(list_name, target_id), ...] sorted; `urls` None = every URL."""
    rows = db.rows("SELECT url, list_name, target_id FROM target_memberships "
                   "ORDER BY url, list_name, target_id")
    wanted = None if urls is None else set(urls)
    found: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        if wanted is None or row["url"] in wanted:
            found.setdefault(row["url"], []).append((row["list_name"], row["target_id"]))
    return found


def _attribute(rows: list[dict[str, Any]], db: ReadDatabase,
               filters: StateFilters) -> list[dict[str, Any]]:
    """Each state row with `lists` (every list its URL is in) and, under a list or target
    filter, the target of that list rather than the one that measured it last."""
    memberships = load_memberships(db, (row["url"] for row in rows))
    for row in rows:
        members = memberships.get(row["url"], [])
        lists = sorted({name for name, _ in members if name} | (
            {row["list_name"]} if row["list_name"] else set()))
        row["lists"] = lists
        chosen = next((target for name, target in members
                       if filters.target_id and target == filters.target_id
                       or not filters.target_id and filters.list_name == name), None)
        if chosen is not None and chosen != row["target_id"]:
            row["target_id"], row["target_name"] = chosen, None
        if filters.list_name and filters.list_name in lists:
            row["list_name"] = filters.list_name
    return rows


def load_current_states(db: ReadDatabase, filters: StateFilters = StateFilters(), *,
                        limit: int | None = None, offset: int = 0) -> list[dict[str, Any]]:
    """target_state rows (one per vantage and URL) with the target's name, category and every
    list the URL is in, filtered, blocked first; `limit` rows from `offset` on (None = all)."""
    where, params = _state_where(filters)
    page = ""
    if limit is not None:
        page = " LIMIT :limit OFFSET :offset"
        params.update(limit=limit, offset=offset)
    rows = db.rows(
        "SELECT s.vantage_id, s.url, s.target_id, COALESCE(s.list_name, t.list_name) AS list_name, "
        "s.state, s.method, s.since, s.last_change, s.last_measured_at, s.last_uid, s.probe_asn, "
        "s.probe_cc, s.streak, t.name AS target_name, t.category_code "
        f"FROM target_state s LEFT JOIN targets t ON t.id = s.target_id {where} "
        f"ORDER BY {_STATE_RANK_SQL}, s.since, s.target_id, s.url, s.vantage_id{page}", params)
    rows = _attribute(rows, db, filters)
    names = {row["id"]: row["name"] for row in db.rows("SELECT id, name FROM targets")} \
        if any(row["target_name"] is None for row in rows) else {}
    for row in rows:
        row["target_name"] = row["target_name"] or names.get(row["target_id"])
    return rows


def count_current_states(db: ReadDatabase, filters: StateFilters = StateFilters()) -> dict[
        str, int]:
    """How many target_state rows (URLs x vantages, each once) the filters match, per state,
    blocked first (all pages together)."""
    where, params = _state_where(filters)
    rows = db.rows("SELECT s.state AS state, COUNT(*) AS n FROM target_state s LEFT JOIN "
                   f"targets t ON t.id = s.target_id {where} GROUP BY s.state", params)
    counts = {str(row["state"]): int(row["n"]) for row in rows}
    return {state: counts[state] for state in sorted(counts, key=state_rank)}


def load_filter_choices(db: ReadDatabase) -> dict[str, list[str]]:
    """The values each filter can take, from what is stored."""
    def distinct(sql: str) -> list[str]:
        return sorted(str(row["value"]) for row in db.rows(sql) if row["value"])

    return {
        "list_name": sorted(set(distinct(
            "SELECT DISTINCT COALESCE(s.list_name, t.list_name) AS value "
            "FROM target_state s LEFT JOIN targets t ON t.id = s.target_id")) | set(distinct(
                "SELECT DISTINCT m.list_name AS value FROM target_memberships m "
                "JOIN target_state s ON s.url = m.url"))),
        "category": distinct("SELECT DISTINCT category_code AS value FROM targets"),
        "asn": distinct("SELECT DISTINCT probe_asn AS value FROM target_state"),
        "state": sorted(distinct("SELECT DISTINCT state AS value FROM target_state"),
                        key=state_rank),
        "method": distinct("SELECT DISTINCT method AS value FROM target_state"),
        "vantage_id": distinct("SELECT DISTINCT vantage_id AS value FROM target_state"),
    }


def load_target_urls(db: ReadDatabase, target_id: str) -> list[str]:
    """Every URL of a target: its saved URLs and its memberships."""
    urls = [row["url"] for row in db.rows(
        "SELECT url FROM target_memberships WHERE target_id = :id ORDER BY url",
        {"id": target_id})]
    target = load_target_row(db, target_id)
    return list(dict.fromkeys([*(item.url for item in target.urls), *urls] if target else urls))
