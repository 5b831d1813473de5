"""The lists and targets an alert's URLs belong to (target_memberships), and [alerts] lists."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, Protocol

# A URL -> [(list name, target id), ...], as target_memberships (store migration 6) keeps it.
Memberships = Mapping[str, list[tuple[str, str]]]


class _Rows(Protocol):
    def rows(self, statement: str, params: Any = ...) -> list[dict[str, Any]]: ...


def load_url_memberships(tables: _Rows, urls: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """Every (list, target) of each of `urls`, sorted; a URL of no known list is left out."""
    wanted = set(urls)
    found: dict[str, list[tuple[str, str]]] = {}
    if not wanted:
        return found
    # Few URLs per pass, a few hundred memberships in all: filtering here keeps the SQL
    # free of a variable-length IN (...) that both backends would have to agree on.
    for row in tables.rows("SELECT url, list_name, target_id FROM target_memberships "
                           "ORDER BY url, list_name, target_id"):
        if row["url"] in wanted:
            found.setdefault(row["url"], []).append((row["list_name"], row["target_id"]))
    return found


def with_memberships(payload: dict[str, Any], memberships: Memberships) -> dict[str, Any]:
    """The payload with `where[].lists` / `where[].targets` (those of that place's URL) and
    `target.lists` / `target.memberships` (all of the alert's URLs); pure."""
    every: set[tuple[str, str]] = set()
    for place in payload.get("where") or []:
        members = memberships.get(place.get("url") or "", [])
        every.update(members)
        place["lists"] = sorted({name for name, _ in members if name})
        place["targets"] = sorted({target for _, target in members})
    if payload.get("target") is not None:
        payload["target"]["lists"] = sorted({name for name, _ in every if name})
        # A target saved outside any list has list_name '': no list, but still its target.
        payload["target"]["memberships"] = [{"list": name or None, "target_id": target}
                                            for name, target in sorted(every)]
    return payload


def wanted_by_lists(payload: Mapping[str, Any], lists: Collection[str]) -> bool:
    """Whether [alerts] lists lets this alert be sent: no lists set = every alert; outages,
    silences and alerts whose URLs are in no known list are always sent."""
    if not lists or payload.get("target") is None:
        return True
    known = payload["target"].get("lists") or []
    return not known or any(name in lists for name in known)
