"""Keyset paging of the measurements table, shared by the SQLite and PostgreSQL stores."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Literal

# Rows fetched per query when streaming measurements; bounds memory, keeps each read short.
PAGE_SIZE = 1000

RunQuery = Callable[[str, list[Any]], Sequence[dict[str, Any]]]


def page_measurements(run_query: RunQuery, clauses: Sequence[str], params: Sequence[Any], *,
                      placeholder: str, order: Literal["asc", "desc"] = "asc",
                      limit: int | None = None, page_size: int = PAGE_SIZE
                      ) -> Iterator[dict[str, Any]]:
    """Rows of `SELECT * FROM measurements WHERE clauses` ordered by (measured_at, uid).

    Pages on (measured_at, uid) rather than holding a cursor, so a consumer may write to the
    store while it iterates. `placeholder` is the backend's parameter mark ("?" or "%s").
    """
    if order not in ("asc", "desc"):
        raise ValueError(f"order must be 'asc' or 'desc', not {order!r}")
    direction, after = ("ASC", ">") if order == "asc" else ("DESC", "<")
    remaining = limit
    last: tuple[str, str] | None = None
    while remaining is None or remaining > 0:
        page_clauses = list(clauses)
        page_params = list(params)
        if last is not None:
            page_clauses.append(f"(measured_at, uid) {after} ({placeholder}, {placeholder})")
            page_params.extend(last)
        where = f"WHERE {' AND '.join(page_clauses)}" if page_clauses else ""
        size = page_size if remaining is None else min(page_size, remaining)
        page = run_query(
            f"SELECT * FROM measurements {where} "
            f"ORDER BY measured_at {direction}, uid {direction} LIMIT {placeholder}",
            [*page_params, size])
        yield from page
        if len(page) < size:
            return
        last = (page[-1]["measured_at"], page[-1]["uid"])
        if remaining is not None:
            remaining -= len(page)
