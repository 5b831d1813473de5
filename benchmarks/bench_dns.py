"""CPU of the probe's DNS step alone: N lookups (A + AAAA) against the lab's resolver on loopback.

The resolver runs in a subprocess, which valgrind does not follow, so callgrind counts the
probe's side only. Two runs give the instructions per lookup without start-up:

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p.out \\
        .venv/bin/python benchmarks/bench_dns.py 600
    valgrind ... benchmarks/bench_dns.py 200     # then (I(600) - I(200)) / 400

`--compare OLD_TREE` instead times this tree's probe_dns against OLD_TREE's probes/dns.py in
one process, interleaved rounds, and prints the median CPU microseconds per lookup of each.
`--uvloop` runs on uvloop. Needs no root: the resolver binds 127.0.0.1 on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from other_tree import load_module  # noqa: E402 - this folder is on sys.path when run as a script

from probes.measurement_types import DnsQuery  # noqa: E402
from probes.options import ProbeOptions  # noqa: E402

Lookup = Callable[[str, ProbeOptions], Awaitable[list[DnsQuery]]]
HOSTNAME = "www.bench.test"


def serve() -> None:
    """The lab's resolver: an A record for every name, NODATA for AAAA (a v4-only site)."""
    from lab.dns_server import DnsServer, bind_udp  # noqa: PLC0415 - only in the server process
    from lab.policies import DnsPlan  # noqa: PLC0415

    async def run() -> None:
        for _ in range(10):  # the same port number for UDP and TCP; retry when TCP's is taken
            udp = bind_udp("127.0.0.1", 0)
            server = DnsServer(udp, lambda name: DnsPlan("answer", ("127.0.0.5",)))
            try:
                await server.start()
                break
            except OSError:
                await server.stop()
        print(udp.getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await server.stop()

    asyncio.run(run())


def start_server() -> tuple[subprocess.Popen[str], int]:
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    return server, int(server.stdout.readline())


async def lookups(lookup: Lookup, count: int, options: ProbeOptions, concurrency: int) -> None:
    remaining = iter(range(count))

    async def worker() -> None:
        for _ in remaining:
            queries = await lookup(HOSTNAME, options)
            assert queries[0]["failure"] is None and queries[1]["failure"] == "dns_no_answer", queries

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def old_probe_dns(old_tree: Path) -> Lookup:
    return load_module(old_tree, "probes/dns.py", "old_dns").probe_dns  # type: ignore[no-any-return]


async def compare(old: Lookup, new: Lookup, options: ProbeOptions, rounds: int, per_round: int) -> None:
    samples: dict[str, list[float]] = {"old": [], "new": []}
    for _ in range(rounds):
        for name, lookup in (("old", old), ("new", new)):
            began = time.process_time()
            await lookups(lookup, per_round, options, 10)
            samples[name].append((time.process_time() - began) / per_round * 1e6)
    for name, values in samples.items():
        print(f"{name}: median {statistics.median(values):.1f} us CPU per lookup ({rounds} rounds)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lookups", type=int, nargs="?", default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--compare", type=Path, metavar="OLD_TREE")
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        serve()
        return 0
    from probes.dns import probe_dns  # noqa: PLC0415 - not needed by the server process

    server, port = start_server()
    options = replace(ProbeOptions(), resolvers=(f"127.0.0.1:{port}",), dns_timeout=5.0)
    try:
        if arguments.uvloop:
            import uvloop  # noqa: PLC0415 - optional: only when asked for

            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        if arguments.compare:
            old = old_probe_dns(arguments.compare)
            asyncio.run(compare(old, probe_dns, options, arguments.rounds, arguments.lookups))
        else:
            asyncio.run(lookups(probe_dns, arguments.lookups, options, arguments.concurrency))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
