"""One round over a realistic network: 150 ms RTT, 1 % loss, 10 % of sites black-holed, 5 % reset.

Two network namespaces joined by a pair of TUN devices whose forwarder delays every packet by half
the RTT each way and loses half the loss rate each way (netem's job; this kernel lacks sch_netem):
the probe in one, the sites, their resolver and the control helper in the other. nftables in the sites' namespace
drops (black hole) or resets the probe's packets that carry data to port 443 of the chosen
sites, so their TCP handshake succeeds and the ClientHello is the first thing lost. The report
gives the round's wall time and the share of the probes' time spent waiting on timeouts and on
SNI retries, and whether those waits overlapped (effective concurrency) or queued.

Run as root: .venv/bin/python benchmarks/bench_realistic.py  (namespaces are removed after).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT_ROOT))

PREFIX = "bm-engine-"
PROBE_NS, SITES_NS = f"{PREFIX}probe", f"{PREFIX}sites"
PROBE_IF, SITES_IF = f"{PREFIX}p", f"{PREFIX}s"
PROBE_IP, SITES_IP = "10.213.255.1", "10.213.255.2"
SITE_RANGE = "10.214.0.0/16"
ZONE = "realistic.test"
HELPER_PORT = 8080
NFT_TABLE = f"{PREFIX}realistic".replace("-", "_")
START_TIMEOUT = 120.0


def site_hostname(number: int) -> str:
    return f"site{number}.{ZONE}"


def site_address(number: int) -> str:
    return f"10.214.{number // 250}.{number % 250 + 1}"


def run(*command: str) -> None:
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"bench_realistic: {' '.join(command)}: {completed.stderr.strip()}")


def in_ns(namespace: str, *command: str) -> list[str]:
    return ["ip", "netns", "exec", namespace, *command]


# ---------------------------------------------------------------- the network


def build_network() -> None:
    """The two namespaces; the link between them is the forwarder's pair of TUN devices."""
    remove_network()
    for namespace in (PROBE_NS, SITES_NS):
        run("ip", "netns", "add", namespace)
        run(*in_ns(namespace, "ip", "link", "set", "lo", "up"))


def address_link() -> None:
    """Once the forwarder made the TUN devices: a point-to-point pair, the site range behind it."""
    run(*in_ns(PROBE_NS, "ip", "addr", "add", PROBE_IP, "peer", SITES_IP, "dev", PROBE_IF))
    run(*in_ns(SITES_NS, "ip", "addr", "add", SITES_IP, "peer", PROBE_IP, "dev", SITES_IF))
    for namespace, interface in ((PROBE_NS, PROBE_IF), (SITES_NS, SITES_IF)):
        run(*in_ns(namespace, "ip", "link", "set", interface, "up"))
    run(*in_ns(PROBE_NS, "ip", "route", "add", SITE_RANGE, "dev", PROBE_IF))
    # Every address of the range is local in the sites' namespace: one listener serves them all.
    run(*in_ns(SITES_NS, "ip", "route", "add", "local", SITE_RANGE, "dev", "lo"))


# This kernel has no sch_netem (only htb and pfifo), so delay and loss are made in user space:
# one process holds a TUN device in each namespace and copies every packet across after half the
# RTT, dropping half the loss rate in each direction.
_TUNSETIFF = 0x400454CA
_IFF_TUN, _IFF_NO_PI = 0x0001, 0x1000
_CLONE_NEWNET = 0x40000000


def _open_tun(namespace: str, name: str) -> int:
    import ctypes  # noqa: PLC0415 - setns(2) only in the forwarder (os.setns is Python 3.12+)
    import fcntl  # noqa: PLC0415 - same
    import struct  # noqa: PLC0415 - same

    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/var/run/netns/{namespace}", "rb") as handle:
        if libc.setns(handle.fileno(), _CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {namespace}")
    descriptor = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(descriptor, _TUNSETIFF, struct.pack("16sH", name.encode(), _IFF_TUN | _IFF_NO_PI))
    return descriptor


async def forward(ready: Path, rtt_ms: float, loss_percent: float) -> None:
    """Copy packets between the two TUN devices, each after rtt/2, losing loss/2 % each way."""
    probe_side = _open_tun(PROBE_NS, PROBE_IF)
    sites_side = _open_tun(SITES_NS, SITES_IF)
    loop = asyncio.get_running_loop()
    delay, loss = rtt_ms / 2000, loss_percent / 200
    chance = random.Random(5).random
    counts = {"forwarded": 0, "lost": 0}

    def write(descriptor: int, packet: bytes) -> None:
        try:
            os.write(descriptor, packet)
        except OSError:
            pass  # the device went away at the end; the packet is lost, as on a wire

    def pump(source: int, target: int) -> None:
        while True:
            try:
                packet = os.read(source, 65535)
            except BlockingIOError:
                return
            if chance() < loss:
                counts["lost"] += 1
                continue
            counts["forwarded"] += 1
            loop.call_later(delay, write, target, packet)

    loop.add_reader(probe_side, pump, probe_side, sites_side)
    loop.add_reader(sites_side, pump, sites_side, probe_side)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    ready.write_text("ready")
    await stop.wait()
    (ready.parent / "forwarder.json").write_text(json.dumps(counts))


def apply_firewall(blackholed: list[str], reset: list[str]) -> None:
    """Drop or reset the probe's data packets (the ClientHello first) to port 443 of those sites.

    A packet carries data when its IP length exceeds the headers (20 + 20 + 12 bytes of TCP
    timestamps); SYN and bare ACKs pass, so the TCP handshake completes.
    """
    def elements(addresses: list[str]) -> str:
        return ", ".join(addresses) if addresses else ""

    sets = []
    for name, addresses in (("blackholed", blackholed), ("resetting", reset)):
        body = f"type ipv4_addr; elements = {{ {elements(addresses)} }};" if addresses else "type ipv4_addr;"
        sets.append(f"set {name} {{ {body} }}")
    rules = f"""
table inet {NFT_TABLE} {{
  {sets[0]}
  {sets[1]}
  chain input {{
    type filter hook input priority 0; policy accept;
    ip saddr {PROBE_IP} ip daddr @blackholed tcp dport 443 ip length > 64 drop
    ip saddr {PROBE_IP} ip daddr @resetting tcp dport 443 ip length > 64 reject with tcp reset
  }}
}}
"""
    completed = subprocess.run(in_ns(SITES_NS, "nft", "-f", "-"), input=rules, capture_output=True,
                               text=True, check=False)
    if completed.returncode != 0:
        raise SystemExit(f"bench_realistic: nft: {completed.stderr.strip()}")


def remove_network() -> None:
    """Delete our namespaces (their devices and nft tables go with them); quiet if absent."""
    for namespace in (PROBE_NS, SITES_NS):
        subprocess.run(["ip", "netns", "delete", namespace], capture_output=True, check=False)


# ---------------------------------------------------------------- the sites' side


async def serve_sites(workdir: Path, count: int) -> None:
    """DNS for every site, one TLS listener for all site addresses (a wildcard certificate)."""
    import ssl  # noqa: PLC0415 - only the sites' child process serves TLS

    from aiohttp import web  # noqa: PLC0415 - only the sites' child process serves HTTP

    from lab.certificates import certificate_pem, issue_leaf, key_pem, make_lab_root  # noqa: PLC0415
    from lab.dns_server import DnsServer, bind_udp  # noqa: PLC0415
    from lab.pages import render_site_page  # noqa: PLC0415
    from lab.policies import DnsPlan  # noqa: PLC0415

    root = make_lab_root()
    certificate, key = issue_leaf(root, f"*.{ZONE}")
    ca_file = workdir / "ca.pem"
    ca_file.write_bytes(certificate_pem(root.certificate))
    chain_file = workdir / "site.pem"
    chain_file.write_bytes(key_pem(key) + certificate_pem(certificate) + certificate_pem(root.certificate))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain_file)
    context.set_alpn_protocols(["http/1.1"])

    addresses = {site_hostname(n): site_address(n) for n in range(count)}
    pages: dict[str, bytes] = {}

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        hostname = (request.host or "").partition(":")[0].lower()
        if hostname not in addresses:
            return web.Response(status=404, text="no such site\n")
        body = pages.get(hostname)
        if body is None:
            body = pages[hostname] = render_site_page(hostname, "/").encode()
        return web.Response(body=body, content_type="text/html", charset="utf-8")

    loop = asyncio.get_running_loop()
    server = web.Server(handle, access_log=None)
    listeners = [await loop.create_server(server, "0.0.0.0", 443, ssl=context, backlog=4096),
                 await loop.create_server(server, "0.0.0.0", 80, backlog=4096)]

    def plan(name: str) -> DnsPlan | None:
        address = addresses.get(name)
        return DnsPlan("answer", (address,)) if address else None

    resolver = DnsServer(bind_udp(SITES_IP), plan)
    await resolver.start()
    (workdir / "sites.json").write_text(json.dumps({"ca_file": str(ca_file), "sites": addresses}))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await resolver.stop()
    for listener in listeners:
        listener.close()


# ---------------------------------------------------------------- the probe's side


def wait_for_helper(deadline: float) -> None:
    while True:
        try:
            socket.create_connection((SITES_IP, HELPER_PORT), timeout=2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit("bench_realistic: the helper did not answer") from None
            time.sleep(0.2)


def _duration(entry: dict) -> float:
    return max(float(entry.get("t", 0)) - float(entry.get("t0", 0)), 0.0)


def waiting_of(measurement: dict) -> tuple[float, float]:
    """(seconds waiting on timed-out steps, seconds of SNI retries) in one measurement.

    Steps of one kind that run side by side count once (the longest): that is the time waited.
    """
    keys = measurement["test_keys"]
    timeouts = 0.0
    first_tls = [e for e in keys.get("tls_handshakes") or [] if not e.get("x_sni_retry")]
    retries = [e for e in keys.get("tls_handshakes") or [] if e.get("x_sni_retry")]
    groups = [
        [q for q in keys.get("queries") or []],
        [{"t0": c.get("t0", 0), "t": c.get("t", 0), "failure": c["status"]["failure"]}
         for c in keys.get("tcp_connect") or []],
        first_tls,
        keys.get("requests") or [],
    ]
    for group in groups:
        timed_out = [_duration(e) for e in group if e.get("failure") == "generic_timeout_error"]
        timeouts += max(timed_out, default=0.0)
    return timeouts, max((_duration(e) for e in retries), default=0.0)


async def probe_round(urls: list[str], options: object, concurrency: int) -> dict:
    from probes.measure import measure_many  # noqa: PLC0415 - imported in the probe's namespace child

    results: list[dict] = []
    errors: list[str] = []
    started = time.monotonic()

    def on_result(url: str, measurement: dict | None, error: str | None) -> None:
        if measurement is None:
            errors.append(f"{url}: {error}")
            return
        timeouts, retries = waiting_of(measurement)
        keys = measurement["test_keys"]
        steps = {name: max((_duration(e) for e in keys.get(key) or [] if not e.get("x_sni_retry")), default=0.0)
                 for name, key in (("dns", "queries"), ("tcp", "tcp_connect"), ("tls", "tls_handshakes"),
                                   ("http", "requests"))}
        ended = time.monotonic() - started
        results.append({"url": url, "runtime": measurement["test_runtime"], "timeouts": timeouts,
                        "started": ended - measurement["test_runtime"], "steps": steps,
                        "retries": retries, "blocking": keys["blocking"],
                        "method": keys.get("blocking_method"), "control_failure": keys.get("control_failure")})

    await measure_many(urls, options, concurrency, on_result)  # type: ignore[arg-type]
    return {"seconds": time.monotonic() - started, "results": results, "errors": errors}


def probe_child(workdir: Path, concurrency: int, count: int) -> None:
    from probes.options import ProbeIdentity, ProbeOptions  # noqa: PLC0415 - see probe_round

    sites = json.loads((workdir / "sites.json").read_text())
    wait_for_helper(time.monotonic() + START_TIMEOUT)
    options = ProbeOptions(
        identity=ProbeIdentity(probe_cc="KZ", vantage_id="bench-realistic"),
        resolvers=(f"{SITES_IP}:53",),
        ca_file=sites["ca_file"],
        lab_public_ranges=(SITE_RANGE,),
        helper_url=f"http://{SITES_IP}:{HELPER_PORT}/",
    )
    order = list(range(count))
    random.Random(11).shuffle(order)  # black-holed and reset sites spread through the round
    urls = [f"https://{site_hostname(n)}/" for n in order]
    cpu_before = time.process_time()
    outcome = asyncio.run(probe_round(urls, options, concurrency))
    outcome["cpu_seconds"] = time.process_time() - cpu_before
    (workdir / "probe.json").write_text(json.dumps(outcome))


# ---------------------------------------------------------------- the report


def summarise(outcome: dict, blackholed: set[str], reset: set[str], concurrency: int) -> dict:
    results = outcome["results"]
    worker_seconds = sum(r["runtime"] for r in results) or 1.0
    timeouts = sum(r["timeouts"] for r in results)
    retries = sum(r["retries"] for r in results)

    def kind(url: str) -> str:
        host = url.split("/")[2]
        return "blackholed" if host in blackholed else "reset" if host in reset else "honest"

    verdicts: dict[str, dict[str, int]] = {}
    runtimes: dict[str, list[float]] = {}
    for result in results:
        group = kind(result["url"])
        label = f"{result['blocking']}" + (f" {result['method']}" if result["method"] else "")
        verdicts.setdefault(group, {}).setdefault(label, 0)
        verdicts[group][label] += 1
        runtimes.setdefault(group, []).append(result["runtime"])
    seconds = outcome["seconds"]
    honest = [r for r in results if kind(r["url"]) == "honest"]
    return {
        "measured": len(results),
        "errors": len(outcome["errors"]),
        "round_seconds": round(seconds, 1),
        # Sum of every measurement's own time: what one worker alone would have taken.
        "measurement_seconds": round(worker_seconds, 1),
        "timeout_seconds": round(timeouts, 1),
        "sni_retry_seconds": round(retries, 1),
        "timeout_share": round(timeouts / worker_seconds, 3),
        "sni_retry_share": round(retries / worker_seconds, 3),
        # measurement_seconds / round: near the concurrency when waits overlap, far below when they queue.
        "effective_concurrency": round(worker_seconds / seconds, 1),
        # From the last URL's start to the round's end: the tail, when fewer than all slots are busy.
        "tail_seconds": round(seconds - max((r["started"] for r in results), default=seconds), 1),
        "concurrency": concurrency,
        "mean_seconds": {group: round(sum(v) / len(v), 2) for group, v in sorted(runtimes.items())},
        # Where an honest measurement's time goes (the longest entry of each step, mean over sites).
        "honest_step_seconds": {
            step: round(sum(r["steps"][step] for r in honest) / max(len(honest), 1), 3)
            for step in ("dns", "tcp", "tls", "http")
        } | {
            # The rest: waiting for the control answer (the probe waits for it after HTTP) and
            # for a CPU on a loaded machine.
            "control_and_other": round(
                sum(max(r["runtime"] - sum(r["steps"].values()), 0.0) for r in honest) / max(len(honest), 1), 3
            )
        },
        "max_seconds": {group: round(max(v), 2) for group, v in sorted(runtimes.items())},
        "verdicts": verdicts,
        "control_failures": sum(1 for r in results if r["control_failure"]),
        "probe_cpu_ms_per_measurement": round(outcome["cpu_seconds"] * 1000 / max(len(results), 1), 2),
    }


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_file(path: Path, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"bench_realistic: {what} did not start (exit {process.poll()})")
        time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls", type=int, default=2000, help="URLs, each a distinct site")
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rtt-ms", type=float, default=150.0)
    parser.add_argument("--loss", type=float, default=1.0, help="percent of packets lost per round trip")
    parser.add_argument("--blackholed", type=float, default=0.10, help="share of sites black-holed")
    parser.add_argument("--reset", type=float, default=0.05, help="share of sites reset")
    parser.add_argument("--helper-concurrency", type=int, default=100, help="the helper's --max-concurrency")
    parser.add_argument("--serve-sites", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--probe-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--forward", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_sites:
        asyncio.run(serve_sites(arguments.serve_sites, arguments.urls))
        return 0
    if arguments.forward:
        asyncio.run(forward(arguments.forward, arguments.rtt_ms, arguments.loss))
        return 0
    if arguments.probe_child:
        probe_child(arguments.probe_child, arguments.concurrency, arguments.urls)
        return 0
    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "nft")):
        print("bench_realistic: needs root, ip and nft; skipped")
        return 0
    if arguments.urls > 250 * 250:
        raise SystemExit("bench_realistic: --urls at most 62500 (the sites' /16)")

    workdir = Path(tempfile.mkdtemp(prefix=f"{PREFIX}realistic-"))
    numbers = list(range(arguments.urls))
    chooser = random.Random(7)
    chosen = chooser.sample(numbers, round(arguments.urls * (arguments.blackholed + arguments.reset)))
    cut = round(arguments.urls * arguments.blackholed)
    blackholed, reset = chosen[:cut], chosen[cut:]
    me = [sys.executable, str(Path(__file__).resolve())]
    sites_process = helper_process = forwarder = None
    try:
        build_network()
        forwarder = subprocess.Popen([*me, "--forward", str(workdir / "forwarder.ready"), "--rtt-ms",
                                      str(arguments.rtt_ms), "--loss", str(arguments.loss)],
                                     cwd=PROJECT_ROOT, stderr=(workdir / "forwarder.log").open("wb"))
        wait_for_file(workdir / "forwarder.ready", forwarder, "the forwarder")
        address_link()
        apply_firewall([site_address(n) for n in blackholed], [site_address(n) for n in reset])
        sites_process = subprocess.Popen(
            in_ns(SITES_NS, *me, "--serve-sites", str(workdir), "--urls", str(arguments.urls)),
            cwd=PROJECT_ROOT, stderr=(workdir / "sites.log").open("wb"))
        wait_for_file(workdir / "sites.json", sites_process, "the sites")
        ca_file = json.loads((workdir / "sites.json").read_text())["ca_file"]
        blockmon = str(Path(sys.executable).parent / "blockmon")
        helper_process = subprocess.Popen(
            in_ns(SITES_NS, blockmon, "helper", "--listen", f"{SITES_IP}:{HELPER_PORT}",
                  "--resolver", f"{SITES_IP}:53", "--ca-file", ca_file, "--lab-public-range", SITE_RANGE,
                  "--max-concurrency", str(arguments.helper_concurrency)),
            cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=(workdir / "helper.log").open("wb"),
            env=os.environ | {"BLOCKMON_EVENT_LOOP": "asyncio"})  # as the probe: the standard loop
        load_before = os.getloadavg()
        probe = subprocess.run(
            in_ns(PROBE_NS, *me, "--probe-child", str(workdir), "--urls", str(arguments.urls),
                  "--concurrency", str(arguments.concurrency)),
            cwd=PROJECT_ROOT, check=False)
        if probe.returncode != 0:
            raise SystemExit(f"bench_realistic: the probe exited {probe.returncode}")
        outcome = json.loads((workdir / "probe.json").read_text())
    finally:
        stop(helper_process)
        stop(sites_process)
        stop(forwarder)
        remove_network()
    link = json.loads((workdir / "forwarder.json").read_text()) if (workdir / "forwarder.json").exists() else {}
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "urls": arguments.urls,
        "network": {"rtt_ms": arguments.rtt_ms, "loss_percent": arguments.loss,
                    "blackholed": len(blackholed), "reset": len(reset), "packets": link},
        **summarise(outcome, {site_hostname(n) for n in blackholed}, {site_hostname(n) for n in reset},
                    arguments.concurrency),
        "load_average": {"before": [round(v, 2) for v in load_before],
                         "after": [round(v, 2) for v in os.getloadavg()]},
    }
    for line in outcome["errors"][:10]:
        print("  " + line, file=sys.stderr)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
