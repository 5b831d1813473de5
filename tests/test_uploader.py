"""The probe-side uploader against real collector processes: outages, rejections, resends."""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from monitor.service.uploader import (
    UploadPolicy,
    backoff_delay,
    classify_response,
    post_batch,
    run_uploader,
    upload_pending,
)
from monitor.settings import CollectorSettings, Settings
from monitor.store import open_store
from monitor.store.base import Store
from monitor.store.writer import StoreWriter
from tests.fixtures.collector import CollectorProcess, register_probe, sample_measurement

VANTAGE = "kz-uploader"


async def no_wait(_seconds: float) -> None:
    return None


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (200, {"stored": 1}, "stored"),
        (401, {"field": "Authorization"}, "auth"),
        (403, {"field": "Authorization"}, "auth"),
        (403, {"field": "measurements[2].annotations.vantage_id", "index": 2}, "rejected_one"),
        (400, {"field": "measurements[0].input", "index": 0}, "rejected_one"),
        (413, {"field": "body"}, "too_large"),
        (404, {"error": "Not Found"}, "config"),
        (429, None, "retry"),
        (500, None, "retry"),
        (503, {"status": "unavailable"}, "retry"),
    ],
)
def test_responses_are_classified(status: int, body: object, outcome: str) -> None:
    assert classify_response(status, body) == outcome


def test_backoff_grows_exponentially_within_its_cap() -> None:
    rng = random.Random(7)
    for attempt in range(12):
        ceiling = min(60.0, 0.5 * 2**attempt)
        delays = [backoff_delay(attempt, base=0.5, cap=60.0, rng=rng) for _ in range(50)]
        assert all(0 <= delay <= ceiling for delay in delays)
        assert max(delays) > ceiling / 2  # jittered over the whole range, not pinned low



def probe_settings(collector: CollectorProcess, token: str, batch: int = 500) -> Settings:
    return Settings(collector=CollectorSettings(url=collector.url, token=token, upload_batch=batch,
                                                upload_interval_seconds=1))


def collector_uids(collector: CollectorProcess) -> list[str]:
    with sqlite3.connect(collector.database.removeprefix("sqlite:///"), timeout=30) as connection:
        return [row[0] for row in connection.execute("SELECT uid FROM measurements ORDER BY uid")]


def spool(store: Store, numbers: range) -> list[str]:
    uids = []
    for number in numbers:
        measurement = sample_measurement(number, vantage_id=VANTAGE)
        assert store.save_measurement(measurement, target_id="azattyq")
        uids.append(measurement["measurement_uid"])
    return uids


async def test_pending_measurements_are_uploaded_in_batches(
    probe_store: Store, collector: CollectorProcess
) -> None:
    uids = spool(probe_store, range(25))
    settings = probe_settings(collector, register_probe(collector, VANTAGE), batch=10)
    async with aiohttp.ClientSession() as session:
        result = await upload_pending(probe_store, settings, session, sleep=no_wait)
    assert (result.uploaded, result.new_at_collector, result.backlog, result.error) == (25, 25, 0, None)
    assert collector_uids(collector) == sorted(uids)
    # The measurements stay in the probe's own database; only the spool is drained.
    assert probe_store.count_measurements() == 25


async def test_an_outage_keeps_everything_spooled(
    probe_store: Store, collector: CollectorProcess
) -> None:
    spool(probe_store, range(5))
    settings = probe_settings(collector, register_probe(collector, VANTAGE))
    collector.stop()
    async with aiohttp.ClientSession() as session:
        result = await upload_pending(probe_store, settings, session, sleep=no_wait,
                                      policy=UploadPolicy(attempts=2))
        assert (result.uploaded, result.backlog, result.error) == (0, 5, "connection_refused")
        collector.start()
        result = await upload_pending(probe_store, settings, session, sleep=no_wait)
    assert (result.uploaded, result.backlog) == (5, 0)
    assert len(collector_uids(collector)) == 5


async def test_a_batch_resent_after_a_crash_is_stored_once(
    probe_store: Store, collector: CollectorProcess
) -> None:
    spool(probe_store, range(8))
    settings = probe_settings(collector, register_probe(collector, VANTAGE))
    async with aiohttp.ClientSession() as session:
        # The probe dies after the collector stored the batch but before marking it uploaded.
        pending = probe_store.spool_pending(100)
        answer = await post_batch(session, f"{collector.url}/api/v1/measurements",
                                  settings.collector.token or "", [json.loads(r["json"]) for r in pending], 30)
        assert answer[0] == 200  # type: ignore[index]
        result = await upload_pending(probe_store, settings, session, sleep=no_wait)
    assert (result.uploaded, result.new_at_collector, result.backlog) == (8, 0, 0)
    assert len(collector_uids(collector)) == 8


async def test_a_refused_measurement_is_parked_with_its_reason(
    probe_store: Store, collector: CollectorProcess, tmp_path: Path
) -> None:
    good = spool(probe_store, range(3))
    forged = sample_measurement(99, vantage_id="kz-someone-else")
    probe_store.save_measurement(forged, target_id="azattyq")
    rejections = tmp_path / "rejected.jsonl"
    settings = probe_settings(collector, register_probe(collector, VANTAGE))
    async with aiohttp.ClientSession() as session:
        result = await upload_pending(probe_store, settings, session, sleep=no_wait,
                                      rejection_log=rejections)
    assert (result.uploaded, result.rejected, result.backlog) == (3, 1, 0)
    assert collector_uids(collector) == sorted(good)
    parked = [json.loads(line) for line in rejections.read_text().splitlines()]
    assert [(p["uid"], p["status"], p["field"]) for p in parked] == [
        (forged["measurement_uid"], 403, "measurements[3].annotations.vantage_id")]
    assert probe_store.load_measurement(forged["measurement_uid"]) is not None
    # The reason is in the store too: the spool keeps the uid as parked, out of the backlog.
    [row] = probe_store.load_parked()
    assert row["uid"] == forged["measurement_uid"]
    assert row["reason"].startswith("403 measurements[3].annotations.vantage_id: ")
    assert (probe_store.spool_parked(), probe_store.spool_backlog()) == (1, 0)
    async with aiohttp.ClientSession() as session:
        again = await upload_pending(probe_store, settings, session, sleep=no_wait)
    assert (again.uploaded, again.rejected, again.backlog) == (0, 0, 0)


async def test_a_revoked_token_drops_nothing(probe_store: Store, collector: CollectorProcess) -> None:
    spool(probe_store, range(4))
    settings = probe_settings(collector, register_probe(collector, VANTAGE))
    from tests.fixtures.collector import run_blockmon

    assert run_blockmon("collector", "revoke", VANTAGE, "--database", collector.database,
                        cwd=collector.workdir).returncode == 0
    async with aiohttp.ClientSession() as session:
        result = await upload_pending(probe_store, settings, session, sleep=no_wait)
    assert result.backlog == 4 and result.uploaded == 0
    assert result.error is not None and "403" in result.error and "revoked" in result.error


@pytest.mark.slow
async def test_uploading_through_collector_restarts_stores_each_measurement_once(
    tmp_path: Path, collector: CollectorProcess
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'probe.db'}", spool=True)
    writer = StoreWriter(store)
    settings = probe_settings(collector, register_probe(collector, VANTAGE), batch=7)
    stop = asyncio.Event()
    uploader = asyncio.create_task(run_uploader(
        writer, settings, stop=stop, policy=UploadPolicy(batch=7, attempts=2, base_delay=0.05, max_delay=0.3),
        sleep_between=lambda _wait: 0.2))
    expected: list[str] = []
    try:
        for round_number in range(4):
            numbers = range(round_number * 30, round_number * 30 + 30)
            expected += await writer.call(spool, store, numbers)
            await asyncio.sleep(0.3)
            # Kill -9 half the time: a collector that dies mid-request must not duplicate either.
            await asyncio.to_thread(collector.stop, kill=round_number % 2 == 0)
            expected += await writer.call(spool, store, range(1000 + round_number * 10, 1010 + round_number * 10))
            await asyncio.sleep(0.3)
            await asyncio.to_thread(collector.start)
        for _ in range(300):
            if await writer.call(store.spool_backlog) == 0:
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await uploader
        await writer.close()
    assert collector_uids(collector) == sorted(expected)
    assert len(expected) == 160


async def test_the_scheduler_job_uploads_one_pass(
    probe_store: Store, collector: CollectorProcess
) -> None:
    from monitor.service.uploader import upload_job

    spool(probe_store, range(6))
    job = upload_job(probe_store, probe_settings(collector, register_probe(collector, VANTAGE)))
    result = await job()
    assert (result.uploaded, result.backlog, result.error) == (6, 0, None)
    assert len(collector_uids(collector)) == 6


def collector_count(collector: CollectorProcess) -> int:
    with sqlite3.connect(collector.database.removeprefix("sqlite:///"), timeout=30) as connection:
        return int(connection.execute("SELECT COUNT(*) FROM measurements").fetchone()[0])


@pytest.mark.slow
def test_an_uploader_killed_9_and_restarted_loses_and_doubles_nothing(
    tmp_path: Path, collector: CollectorProcess
) -> None:
    import os
    import signal
    import subprocess
    import time

    from monitor.store.rows import measurement_row
    from tests.fixtures.collector import PROJECT_ROOT, blockmon_command

    probe_dir = tmp_path / "probe"
    store = open_store(f"sqlite:///{probe_dir / 'blockmon.db'}", spool=True)
    measurements = [sample_measurement(n, vantage_id=VANTAGE) for n in range(1500)]
    store.save_measurements([measurement_row(m, target_id=None, run_id=None, confirmation=0)
                             for m in measurements])
    store.close()
    environment = {
        **os.environ, "PYTHONPATH": str(PROJECT_ROOT),
        "BLOCKMON_STORAGE_DATA_DIR": str(probe_dir),
        "BLOCKMON_COLLECTOR_URL": collector.url,
        "BLOCKMON_COLLECTOR_TOKEN": register_probe(collector, VANTAGE),
        "BLOCKMON_COLLECTOR_UPLOAD_BATCH": "10",
        "BLOCKMON_COLLECTOR_UPLOAD_INTERVAL_SECONDS": "1",
    }

    def start_uploader() -> subprocess.Popen[bytes]:
        return subprocess.Popen(blockmon_command("collector", "upload", "--loop"), cwd=tmp_path,
                                env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    for kill_after in (100, 600):
        uploader = start_uploader()
        deadline = time.monotonic() + 60
        while collector_count(collector) < kill_after and time.monotonic() < deadline:
            time.sleep(0.02)
        uploader.send_signal(signal.SIGKILL)  # mid-batch, between POST and marking, wherever
        uploader.wait(timeout=10)
    uploader = start_uploader()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            with sqlite3.connect(probe_dir / "blockmon.db", timeout=30) as connection:
                if connection.execute("SELECT COUNT(*) FROM spool").fetchone()[0] == 0:
                    break
            time.sleep(0.2)
    finally:
        uploader.send_signal(signal.SIGTERM)
        uploader.wait(timeout=20)
    assert collector_uids(collector) == sorted(m["measurement_uid"] for m in measurements)
