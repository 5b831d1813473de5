"""The same histories in PostgreSQL give the very same report as in SQLite (one query layer)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from monitor.store import open_store
from monitor.store.current_states import (
    StateFilters,
    load_current_states,
    load_filter_choices,
)
from monitor.store.queries import (
    ReadDatabase,
)
from reports.build import build_report
from reports.collect import collect_inputs
from reports.periods import parse_period
from reports.render_json import render_json
from tests.fixtures.reports import REPORT_TARGETS, HistoryStore, fill_history

pytestmark = pytest.mark.postgres
NOW = datetime(2026, 12, 1, 6, 0, tzinfo=UTC)


def report_json(url: str, period: str) -> str:
    store = open_store(url, migrate=False)
    try:
        return render_json(build_report(collect_inputs(store, parse_period(period),
                                                       list(REPORT_TARGETS), now=NOW)))
    finally:
        store.close()


def test_postgres_report_equals_sqlite_report(postgres_url: str,
                                              history_store: HistoryStore) -> None:
    store = open_store(postgres_url)
    try:
        fill_history(store)
    finally:
        store.close()
    for period in ("2026-11", "2026-W45"):
        from_postgres = report_json(postgres_url, period)
        assert '"verdict": "still blocked"' in from_postgres
        assert from_postgres == report_json(history_store.url, period)

    store = open_store(postgres_url, migrate=False)
    try:
        db = ReadDatabase(store)
        assert db.dialect == "postgres"
        blocked = load_current_states(db, StateFilters(state="blocked", asn="AS21299"))
        assert [(row["url"], row["method"]) for row in blocked] == [
            ("https://blocked.example/", "http.blockpage")]
        assert load_filter_choices(db)["asn"] == ["AS21299", "AS9198"]
    finally:
        store.close()
