"""Sustained collector ingest: 10 probe clients upload batches over HTTP; measurements/s stored.

    .venv/bin/python benchmarks/bench_ingest.py [--backend sqlite|postgres|both] [--batches N]

Each backend gets a fresh database (PostgreSQL: a new schema in 127.0.0.1:5432/test, dropped at
the end), real `blockmon collector` processes on loopback, and 10 registered probes that each
send `--batches` batches of `--batch` measurements concurrently. The figure counts only
measurements the collector reported as newly stored, over wall-clock time of the upload phase.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.collector import CollectorProcess, register_probe, sample_measurement  # noqa: E402

POSTGRES_SERVER = os.environ.get("BLOCKMON_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/test")
CLIENTS = 10


def realistic_measurement(number: int, vantage_id: str) -> dict:
    """The sample measurement with a DNS answer, a TCP connect and a 2 KiB body: ~3.4 KB of JSON."""
    measurement = sample_measurement(number, vantage_id=vantage_id)
    keys = measurement["test_keys"]
    keys["queries"] = [{"hostname": "www.azattyq.org", "query_type": "A", "engine": "system",
                        "failure": None, "answers": [{"answer_type": "A", "ipv4": "192.0.2.10",
                                                      "ttl": 300}], "t0": 0.001, "t": 0.012}]
    keys["tcp_connect"] = [{"ip": "192.0.2.10", "port": 443,
                            "status": {"success": True, "failure": None, "blocked": None}}]
    keys["requests"] = [{"request": {"method": "GET", "url": measurement["input"], "headers": {}},
                         "response": {"code": 200, "headers": {"Content-Type": "text/html"},
                                      "body": "<html>" + "x" * 2048 + "</html>",
                                      "body_length": 2061, "title": "Azattyq"},
                         "failure": None, "t0": 0.02, "t": 0.2}]
    return measurement


async def client(session: aiohttp.ClientSession, url: str, token: str, batches: list[list[dict]]) -> int:
    stored = 0
    for batch in batches:
        async with session.post(f"{url}/api/v1/measurements", json={"measurements": batch},
                                headers={"Authorization": f"Bearer {token}"}) as response:
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f"collector answered {response.status}: {body}")
            stored += int(body["stored"])
    return stored


async def upload_all(replicas: list[CollectorProcess], tokens: dict[str, str],
                     work: dict[str, list[list[dict]]]) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        results = await asyncio.gather(*(
            client(session, replicas[index % len(replicas)].url, tokens[vantage], work[vantage])
            for index, vantage in enumerate(work)))
    return sum(results)


def bench(backend: str, database: str, workdir: Path, *, batches: int, batch: int,
          replicas_count: int, threads: int | None) -> tuple[int, float]:
    extra = ("--database-threads", str(threads)) if threads else ()
    replicas = [CollectorProcess(database=database, workdir=workdir, extra_arguments=extra)
                for _ in range(replicas_count)]
    try:
        for replica in replicas:
            replica.start()
        tokens = {f"bench-{n}": register_probe(replicas[0], f"bench-{n}") for n in range(CLIENTS)}
        # Built before the clock starts: the probes' own JSON work is not the collector's.
        work = {
            vantage: [[realistic_measurement(n * 1_000_000 + b * batch + i, vantage)
                       for i in range(batch)] for b in range(batches)]
            for n, vantage in enumerate(tokens)
        }
        started = time.perf_counter()
        stored = asyncio.run(upload_all(replicas, tokens, work))
        elapsed = time.perf_counter() - started
    finally:
        for replica in replicas:
            replica.stop()
    return stored, elapsed


def postgres_schema_url() -> tuple[str, str] | None:
    try:
        import psycopg

        schema = "bench_" + secrets.token_hex(4)
        with psycopg.connect(POSTGRES_SERVER, autocommit=True, connect_timeout=3) as connection:
            connection.execute(f"CREATE SCHEMA {schema}")
    except Exception as error:  # no server, no driver: say so and skip this backend
        print(f"postgres: skipped ({type(error).__name__}: {str(error).strip()[:100]})")
        return None
    separator = "&" if "?" in POSTGRES_SERVER else "?"
    return schema, f"{POSTGRES_SERVER}{separator}options={quote(f'-csearch_path={schema}')}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--batches", type=int, default=6, help="batches per client")
    parser.add_argument("--batch", type=int, default=500, help="measurements per batch")
    parser.add_argument("--replicas", type=int, default=1, help="collector processes (PostgreSQL)")
    parser.add_argument("--threads", type=int, default=None, help="database threads per collector")
    options = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    backends = ["sqlite", "postgres"] if options.backend == "both" else [options.backend]
    for backend in backends:
        with tempfile.TemporaryDirectory() as workdir:
            schema = None
            if backend == "sqlite":
                database = f"sqlite:///{Path(workdir) / 'collector.db'}"
                replicas = 1  # one writer: SQLite serialises writes anyway
            else:
                found = postgres_schema_url()
                if found is None:
                    continue
                schema, database = found
                replicas = options.replicas
            try:
                stored, elapsed = bench(backend, database, Path(workdir), batches=options.batches,
                                        batch=options.batch, replicas_count=replicas,
                                        threads=options.threads)
            finally:
                if schema:
                    import psycopg

                    with psycopg.connect(POSTGRES_SERVER, autocommit=True) as connection:
                        connection.execute(f"DROP SCHEMA {schema} CASCADE")
        expected = CLIENTS * options.batches * options.batch
        print(f"{backend}: {stored} of {expected} measurements stored in {elapsed:.2f} s = "
              f"{stored / elapsed:,.0f} measurements/s ({CLIENTS} clients, batches of "
              f"{options.batch}, {replicas} collector process(es))")
        if stored != expected:
            print(f"{backend}: ERROR: expected {expected} stored", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
