"""The floor under the probe's CPU per measurement: one TLS handshake in OpenSSL alone, no network.

A client and a server SSLObject talk through memory BIOs in one process, with the lab's kind of
certificates (ECDSA P-256 leaf signed by an ECDSA root, TLS 1.3, X25519); the CPU of each side's
do_handshake() calls is timed separately. Every measurement of an https URL makes one such
client handshake (two when the SNI retries run), so nothing in Python can take the engine's CPU
per measurement below this figure. `--verify none` shows what checking the chain adds.

    .venv/bin/python benchmarks/bench_handshake.py [--handshakes 500]
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lab.certificates import certificate_pem, issue_leaf, key_pem, make_lab_root  # noqa: E402


def contexts(directory: Path, verify: bool) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    root = make_lab_root()
    leaf, key = issue_leaf(root, "site.test")
    (directory / "chain.pem").write_bytes(certificate_pem(leaf))
    (directory / "key.pem").write_bytes(key_pem(key))
    (directory / "ca.pem").write_bytes(certificate_pem(root.certificate))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(directory / "chain.pem", directory / "key.pem")
    # As the probe's: probes.tls.client_context (a CA file, full verification).
    client = ssl.create_default_context(cafile=str(directory / "ca.pem"))
    client.set_alpn_protocols(["http/1.1"])
    if not verify:
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
    return client, server


def handshake(client: ssl.SSLContext, server: ssl.SSLContext) -> tuple[float, float]:
    """CPU seconds of (client, server) do_handshake() calls for one full handshake."""
    to_client, from_client, to_server, from_server = (ssl.MemoryBIO() for _ in range(4))
    client_side = client.wrap_bio(to_client, from_client, server_hostname="site.test")
    server_side = server.wrap_bio(to_server, from_server, server_side=True)
    client_cpu = server_cpu = 0.0
    client_done = server_done = False
    while not (client_done and server_done):
        client_done, cpu = _step(client_side)
        client_cpu += cpu
        to_server.write(from_client.read())
        server_done, cpu = _step(server_side)
        server_cpu += cpu
        to_client.write(from_server.read())
    return client_cpu, server_cpu


def _step(side: ssl.SSLObject) -> tuple[bool, float]:
    """One do_handshake() call: (whether the handshake is done, its CPU seconds)."""
    started = time.process_time()
    try:
        side.do_handshake()
        done = True
    except ssl.SSLWantReadError:
        done = False
    return done, time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handshakes", type=int, default=500)
    parser.add_argument("--verify", choices=("full", "none"), default="full")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        client, server = contexts(Path(directory), arguments.verify == "full")
        for _ in range(20):  # warm: contexts, caches
            handshake(client, server)
        totals = [handshake(client, server) for _ in range(arguments.handshakes)]
    client_ms = sorted(c * 1000 for c, _ in totals)
    server_ms = sorted(s * 1000 for _, s in totals)
    print(json.dumps({
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "openssl": ssl.OPENSSL_VERSION,
        "verify": arguments.verify,
        "handshakes": arguments.handshakes,
        "client_cpu_ms_median": round(client_ms[len(client_ms) // 2], 3),
        "client_cpu_ms_mean": round(sum(client_ms) / len(client_ms), 3),
        "server_cpu_ms_median": round(server_ms[len(server_ms) // 2], 3),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
