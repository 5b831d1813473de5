"""Collector replicas on one PostgreSQL database: both ingest, nothing is stored twice."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import psycopg
import pytest

from tests.fixtures.collector import (
    CollectorProcess,
    http_json,
    register_probe,
    run_blockmon,
    sample_measurement,
)

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def replicas(postgres_url: str, tmp_path: Path) -> Iterator[list[CollectorProcess]]:
    # The first migrates before the second starts serving; both then share every table.
    started = []
    try:
        for _ in range(2):
            process = CollectorProcess(database=postgres_url, workdir=tmp_path)
            process.start()
            started.append(process)
        yield started
    finally:
        for process in started:
            process.stop()


def stored_uids(postgres_url: str) -> list[str]:
    with psycopg.connect(postgres_url) as connection:
        return [row[0] for row in connection.execute("SELECT uid FROM measurements ORDER BY uid")]


async def post(session: aiohttp.ClientSession, url: str, token: str, batch: list[dict]) -> dict:
    async with session.post(f"{url}/api/v1/measurements", json={"measurements": batch},
                            headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 200, await response.text()
        return dict(await response.json())


async def test_two_replicas_ingest_the_same_batches_once(
    replicas: list[CollectorProcess], postgres_url: str
) -> None:
    first, second = replicas
    tokens = {f"kz-replica-{n}": register_probe(first, f"kz-replica-{n}") for n in range(4)}
    batches = {
        vantage: [sample_measurement(n, vantage_id=vantage) for n in range(index * 1000, index * 1000 + 60)]
        for index, vantage in enumerate(tokens)
    }
    async with aiohttp.ClientSession() as session:
        # Every batch goes to both replicas at once, as after a load balancer's retry.
        answers = await asyncio.gather(*(
            post(session, replica.url, tokens[vantage], batch)
            for vantage, batch in batches.items() for replica in replicas
        ))
    assert sum(answer["stored"] for answer in answers) == 240
    assert sum(answer["duplicates"] for answer in answers) == 240
    async with aiohttp.ClientSession() as session:
        # And each replica on its own takes new measurements.
        only = {replica.url: [sample_measurement(9000 + n + 100 * i, vantage_id="kz-replica-0")
                              for n in range(20)] for i, replica in enumerate(replicas)}
        answers = await asyncio.gather(*(
            post(session, url, tokens["kz-replica-0"], batch) for url, batch in only.items()))
    assert [answer["stored"] for answer in answers] == [20, 20]
    expected = sorted(m["measurement_uid"] for batch in [*batches.values(), *only.values()]
                      for m in batch)
    assert stored_uids(postgres_url) == expected


def test_a_token_issued_by_one_replica_is_revoked_on_both(
    replicas: list[CollectorProcess], postgres_url: str
) -> None:
    first, second = replicas
    token = register_probe(first, "kz-shared")
    measurement = sample_measurement(1, vantage_id="kz-shared")
    body = {"measurements": [measurement]}
    assert http_json("POST", f"{second.url}/api/v1/measurements", body, token=token)[0] == 200
    result = run_blockmon("collector", "revoke", "kz-shared", "--database", postgres_url,
                          cwd=first.workdir)
    assert result.returncode == 0, result.stderr
    for replica in replicas:
        status, answer = http_json("POST", f"{replica.url}/api/v1/measurements", body, token=token)
        assert status == 403 and answer["field"] == "Authorization"
    with psycopg.connect(postgres_url) as connection:
        row = connection.execute("SELECT json FROM measurements").fetchone()
        probe_columns = [column.name for column in connection.execute(
            "SELECT * FROM probes LIMIT 0").description or []]
    # Privacy: the probe's address is kept neither in its measurement nor in its record.
    assert row is not None and json.loads(row[0])["probe_ip"] == "127.0.0.1"
    assert not [column for column in probe_columns if "ip" in column or "address" in column]


def test_the_collector_reconnects_after_the_database_drops_it(
    postgres_url: str, tmp_path: Path
) -> None:
    application = "blockmon-reconnect-test"
    # One database thread, so the request after the drop meets the dead connection for sure.
    collector = CollectorProcess(database=f"{postgres_url}&application_name={application}",
                                 workdir=tmp_path, extra_arguments=("--database-threads", "1"))
    collector.start()
    try:
        token = register_probe(collector, "kz-reconnect")
        batches = [[sample_measurement(number, vantage_id="kz-reconnect")] for number in range(8)]
        first = {"measurements": batches[0]}
        assert http_json("POST", f"{collector.url}/api/v1/measurements", first, token=token)[0] == 200
        with psycopg.connect(postgres_url, autocommit=True) as connection:
            dropped = connection.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = %s", (application,)).fetchone()
        assert dropped is not None and dropped[0] >= 1
        # A request on a dropped connection is refused as retryable (503), never as the probe's
        # fault; the ones after it work again on a fresh connection.
        statuses = [
            http_json("POST", f"{collector.url}/api/v1/measurements", {"measurements": batch},
                      token=token)[0]
            for batch in batches[1:]
        ]
        assert statuses == [503] + [200] * 6, statuses
        assert http_json("GET", f"{collector.url}/api/v1/health")[0] == 200
    finally:
        collector.stop()
    accepted = [batches[0][0]["measurement_uid"]] + [
        batch[0]["measurement_uid"] for batch, status in zip(batches[1:], statuses, strict=True) if status == 200
    ]
    assert stored_uids(postgres_url) == sorted(accepted)
