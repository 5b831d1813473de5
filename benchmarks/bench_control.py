"""The probe's control step in µs per call: parse_control_answer, ControlClient.post, fetch_control.

A `blockmon helper` on the lab's honest side answers the probe's requests for lab sites; its real
answers are then parsed in process, and posts and whole control steps run against it on loopback.
`--baseline DIR` (an older tree, e.g. `git archive main | tar -x -C DIR`) loads that tree's
control modules too and interleaves old and new many times: the medians compare the two under the
same load. post and fetch_control report the probe process's CPU (time.process_time), not wall
time: the helper's work runs in its own process. Needs root (the lab).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

# Run as a script, this folder is on sys.path: the lab and process helpers of the engine's bench.
from bench_measure import bench_urls, lab_options, start_helper, start_lab
from other_tree import load_module

from probes import control, control_client, control_protocol
from probes.options import ProbeOptions

ROUNDS = 15


def load_old(baseline: Path) -> dict[str, types.ModuleType]:
    """The baseline's control modules under other names, importing each other, not this tree's."""
    modules: dict[str, types.ModuleType] = {}
    saved = {name: sys.modules[name] for name in ("probes.control_protocol", "probes.control_client")}
    try:
        for short in ("control_protocol", "control_client", "control"):
            module = load_module(baseline, f"probes/{short}.py", f"old_{short}")
            sys.modules[f"probes.{short}"] = module  # what the next old module imports
            modules[short] = module
    finally:
        sys.modules.update(saved)
    return modules


def median_us(samples: list[float]) -> float:
    return round(statistics.median(samples), 2)


def time_parse(parse: Callable[[bytes], object], bodies: list[bytes], repeat: int) -> float:
    started = time.perf_counter()
    for _ in range(repeat):
        for body in bodies:
            parse(body)
    return (time.perf_counter() - started) / (repeat * len(bodies)) * 1e6


async def cpu_per_call(call: Callable[[], Awaitable[object]], calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        await call()
    return (time.process_time() - started) / calls * 1e6


async def capture_answers(options: ProbeOptions, urls: list[str]) -> list[bytes]:
    """The helper's 200 answers to the probe's requests for `urls`, as the probe receives them."""
    assert options.helper_url is not None
    bodies = []
    async with control_client.ControlClient() as client:
        for url in urls:
            body = json.dumps(control_protocol.build_control_request(url, [], {})).encode()
            reply = await client.post(options.helper_url, body, {"Content-Type": "application/json"},
                                      timeout=30, limit=control.MAX_CONTROL_ANSWER_BYTES)
            assert reply.status == 200, reply.body
            bodies.append(reply.body)
    return bodies


async def bench_round_trips(trees: dict[str, dict[str, types.ModuleType]], options: ProbeOptions,
                            url: str, calls: int) -> dict[str, dict[str, float]]:
    """CPU µs per post and per fetch_control of each tree, kept-alive connections, interleaved."""
    assert options.helper_url is not None
    helper_url = options.helper_url
    body = json.dumps(control_protocol.build_control_request(url, [], {})).encode()
    samples: dict[str, dict[str, list[float]]] = {name: {"post": [], "fetch_control": []} for name in trees}
    clients = {name: modules["control_client"].ControlClient() for name, modules in trees.items()}
    try:
        for client in clients.values():  # the first post opens the connection
            await client.post(helper_url, body, {}, timeout=30, limit=1 << 22)
        for _ in range(ROUNDS):
            for name, modules in trees.items():
                client = clients[name]
                fetch = modules["control"].fetch_control

                async def post(client: Any = client) -> object:
                    return await client.post(helper_url, body, {"Content-Type": "application/json"},
                                             timeout=30, limit=1 << 22)

                async def step(client: Any = client, fetch: Any = fetch) -> object:
                    return await fetch(client, options, url, [])

                samples[name]["post"].append(await cpu_per_call(post, calls))
                samples[name]["fetch_control"].append(await cpu_per_call(step, calls))
    finally:
        for client in clients.values():
            await client.close()
    return {name: {what: median_us(values) for what, values in parts.items()} for name, parts in samples.items()}


def bench_parse(trees: dict[str, dict[str, types.ModuleType]], bodies: list[bytes]) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in trees}
    for _ in range(ROUNDS):
        for name, modules in trees.items():
            samples[name].append(time_parse(modules["control_protocol"].parse_control_answer, bodies, 200))
    return {name: median_us(values) for name, values in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", type=Path, default=None, help="an older tree to compare with")
    parser.add_argument("--sites", type=int, default=20)
    parser.add_argument("--calls", type=int, default=200, help="posts per sample of a round trip")
    parser.add_argument("--save-answers", type=Path, default=None, help="write the captured answers (JSON lines)")
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_control: the lab needs root; skipped")
        return 0
    trees = {"new": {"control_protocol": control_protocol, "control_client": control_client, "control": control}}
    if arguments.baseline is not None:
        trees = {"old": load_old(arguments.baseline), **trees}
    directory = Path(tempfile.mkdtemp(prefix="blockmon-bench-control-"))
    lab_process, info = start_lab(directory, arguments.sites)
    helper_process = None
    try:
        helper_process, helper_url = start_helper(directory, info, "asyncio")
        options = replace(lab_options(info, helper_url), control_timeout=30)
        urls = bench_urls(arguments.sites, arguments.sites)
        bodies = asyncio.run(capture_answers(options, urls))
        if arguments.save_answers is not None:
            arguments.save_answers.write_bytes(b"".join(body + b"\n" for body in bodies))
        parse = bench_parse(trees, bodies)
        round_trips = asyncio.run(bench_round_trips(trees, options, urls[0], arguments.calls))
    finally:
        for process in (helper_process, lab_process):
            if process is not None:
                process.terminate()
                process.wait(timeout=15)
    report = {
        "answers": len(bodies),
        "mean_answer_bytes": round(statistics.mean(map(len, bodies))),
        "parse_control_answer_us": parse,
        "cpu_us_per_call": round_trips,
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
