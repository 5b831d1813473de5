"""Uploads against a real collector (findings 4 and 10): a probe with a skewed clock has its
measurements stored re-dated and flagged, in order, none parked; a replay older than the window
is refused; refused measurements are parked together, the rest sent once (POSTs counted)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp

from monitor.service.uploader import upload_pending
from monitor.settings import CollectorSettings, Settings
from monitor.store import Store, open_store
from tests.fixtures.collector import CollectorProcess, register_probe, sample_measurement

VANTAGE = "kz-almaty-1"


async def no_wait(_seconds: float) -> None:
    return None



def settings_for(collector: CollectorProcess) -> Settings:
    return Settings(collector=CollectorSettings(url=collector.url,
                                                token=register_probe(collector, VANTAGE),
                                                upload_batch=500, upload_interval_seconds=1))


class PostCounter:
    """Counts the POSTs a session really sends and the measurements in their bodies."""

    def __init__(self) -> None:
        self.posts = 0
        self.copies = 0
        self._bodies: dict[int, bytearray] = {}
        self.trace = aiohttp.TraceConfig()
        self.trace.on_request_chunk_sent.append(self._chunk)
        self.trace.on_request_end.append(self._end)

    async def _chunk(self, _session: Any, context: SimpleNamespace, params: Any) -> None:
        self._bodies.setdefault(id(context), bytearray()).extend(params.chunk)

    async def _end(self, _session: Any, context: SimpleNamespace, params: Any) -> None:
        if params.method == "POST":
            self.posts += 1
            body = json.loads(bytes(self._bodies.pop(id(context), b"{}")) or b"{}")
            self.copies += len(body.get("measurements", []))


def collector_rows(collector: CollectorProcess) -> list[tuple[str, str, str]]:
    with sqlite3.connect(collector.database.removeprefix("sqlite:///"), timeout=30) as connection:
        return connection.execute("SELECT uid, measured_at, json FROM measurements "
                                  "ORDER BY measured_at, uid").fetchall()


async def test_refused_measurements_are_parked_together_and_the_rest_sent_once(
        probe_store: Store, collector: CollectorProcess) -> None:
    for number in range(300):  # another vantage's: refused for good (403)
        probe_store.save_measurement(sample_measurement(number, vantage_id="kz-other"),
                                     target_id="azattyq")
    for number in range(300, 400):
        probe_store.save_measurement(sample_measurement(number, vantage_id=VANTAGE),
                                     target_id="azattyq")
    counter = PostCounter()
    async with aiohttp.ClientSession(trace_configs=[counter.trace]) as session:
        result = await upload_pending(probe_store, settings_for(collector), session,
                                      sleep=no_wait)
    assert (result.uploaded, result.rejected, result.backlog) == (100, 300, 0)
    assert probe_store.spool_parked() == 300
    assert (counter.posts, counter.copies) == (2, 500)  # was 301 POSTs and ~45,000 copies
    assert len(collector_rows(collector)) == 100


async def test_a_probe_clock_3_hours_fast_loses_nothing_and_keeps_its_order(
        probe_store: Store, collector: CollectorProcess) -> None:
    skew = timedelta(hours=3)
    start = datetime.now(UTC) - timedelta(minutes=30) + skew  # as the fast clock stamped them
    for number in range(300):
        probe_store.save_measurement(sample_measurement(
            number, vantage_id=VANTAGE, started=start + timedelta(seconds=number)),
            target_id="azattyq")
    counter = PostCounter()
    async with aiohttp.ClientSession(trace_configs=[counter.trace]) as session:
        result = await upload_pending(probe_store, settings_for(collector), session,
                                      sleep=no_wait, clock=lambda: datetime.now(UTC) + skew)
    assert (result.uploaded, result.rejected, probe_store.spool_parked()) == (300, 0, 0)
    assert counter.posts == 1
    rows = collector_rows(collector)
    assert len(rows) == 300
    now = datetime.now(UTC)
    stored = [json.loads(text) for _, _, text in rows]
    # Re-dated by the clock offset seen at upload, the original stamp and offset kept.
    assert all(abs(int(item["annotations"]["clock_skew_seconds"]) + 10800) <= 5
               for item in stored)
    first = datetime.strptime(stored[0]["measurement_start_time"], "%Y-%m-%d %H:%M:%S")
    assert abs(first.replace(tzinfo=UTC) - (now - timedelta(minutes=30))) < timedelta(minutes=2)
    originals = [item["annotations"]["probe_measurement_start_time"] for item in stored]
    assert originals == sorted(originals)  # measured_at order is the probe's order


async def test_a_replay_older_than_the_window_is_refused_even_with_a_right_clock(
        probe_store: Store, collector: CollectorProcess) -> None:
    old = datetime.now(UTC) - timedelta(days=90)
    for number in range(5):
        probe_store.save_measurement(sample_measurement(number, vantage_id=VANTAGE, started=old),
                                     target_id="azattyq")
    settings = settings_for(collector)
    probe_store.clock = lambda: datetime.now(UTC) - timedelta(hours=2)  # parked 2 hours ago
    async with aiohttp.ClientSession() as session:
        result = await upload_pending(probe_store, settings, session, sleep=no_wait)
    assert (result.uploaded, result.rejected) == (0, 5)
    assert {row["reason"] for row in probe_store.load_parked()} == {
        f"400 measurements[{n}].measurement_start_time: is older than 60 days"
        for n in range(5)}
    assert collector_rows(collector) == []
    # A refusal for the time is tried again an hour later: all five in one POST.
    probe_store.clock = lambda: datetime.now(UTC)
    counter = PostCounter()
    async with aiohttp.ClientSession(trace_configs=[counter.trace]) as session:
        again = await upload_pending(probe_store, settings, session, sleep=no_wait)
    assert (again.rejected, counter.posts, counter.copies) == (5, 1, 5)
    async with aiohttp.ClientSession(trace_configs=[counter.trace]) as session:
        await upload_pending(probe_store, settings, session, sleep=no_wait)
    assert counter.posts == 1  # just parked again: not before another hour


def test_status_shows_parked_counts_and_why(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from monitor.cli import cli

    database = tmp_path / "data" / "blockmon.db"
    store = open_store(f"sqlite:///{database}", spool=True)
    for number in range(3):
        measurement = sample_measurement(number, vantage_id=VANTAGE)
        store.save_measurement(measurement, target_id="azattyq")
        store.park_upload(measurement["measurement_uid"], f"400 measurements[{number}]."
                          "measurement_start_time: is in the future")
    store.close()
    config = tmp_path / "blockmon.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
                      '[collector]\nurl = "http://127.0.0.1:9"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "status"], obj={})
    assert result.exit_code == 0, result.output
    assert "3 parked (refused by the collector)" in result.output
    assert "  parked 3: 400 measurement_start_time: is in the future" in result.output
