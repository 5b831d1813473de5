"""ASN database benchmark: load a synthetic iptoasn file of the real one's size; time lookups."""

from __future__ import annotations

import argparse
import gzip
import ipaddress
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from probes.asn import load_asn_database  # noqa: E402

# ip2asn-combined.tsv (2025) has ~520k lines, ~3/4 IPv4, ~95k distinct (AS, country, name).
IPV4_LINES = 390_000
IPV6_LINES = 130_000
DISTINCT_AS = 95_000


def write_synthetic_file(path: Path, seed: int = 7) -> int:
    """A sorted, disjoint, gzipped combined file with unrouted gaps as iptoasn writes them."""
    rng = random.Random(seed)
    lines = 0
    with gzip.open(path, "wt", encoding="utf-8") as stream:
        start = 1 << 24
        for _ in range(IPV4_LINES):
            size = rng.randint(256, 8192)
            asn = rng.randint(1, DISTINCT_AS)
            stream.write(
                f"{ipaddress.IPv4Address(start)}\t{ipaddress.IPv4Address(start + size - 1)}\t"
                f"{asn}\t{'KZ' if asn % 7 else 'US'}\tSYNTHETIC-AS-{asn} Network Services LLC\n"
            )
            start += size + rng.choice((0, 0, 0, 256))
            lines += 1
        start = 0x2001 << 112
        for _ in range(IPV6_LINES):
            size = rng.randint(1 << 64, 1 << 80)
            asn = rng.randint(1, DISTINCT_AS)
            stream.write(
                f"{ipaddress.IPv6Address(start)}\t{ipaddress.IPv6Address(start + size - 1)}\t"
                f"{asn}\t{'KZ' if asn % 7 else 'US'}\tSYNTHETIC-AS-{asn} Network Services LLC\n"
            )
            start += size + 1
            lines += 1
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lookups", type=int, default=200_000)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "ip2asn-combined.tsv.gz"
        lines = write_synthetic_file(path)
        size_mb = path.stat().st_size / 1e6
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        database = load_asn_database(path)
        load_seconds = time.perf_counter() - started
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rng = random.Random(3)
    v4 = [str(ipaddress.IPv4Address(rng.randint(1 << 24, 0xDFFFFFFF))) for _ in range(arguments.lookups)]
    v6 = [str(ipaddress.IPv6Address((0x2001 << 112) + rng.getrandbits(100))) for _ in range(arguments.lookups)]
    timings = {}
    for name, addresses in (("IPv4", v4), ("IPv6", v6)):
        started = time.perf_counter()
        found = sum(database.lookup(ip) is not None for ip in addresses)
        timings[name] = ((time.perf_counter() - started) / len(addresses) * 1e6, found)
    print(f"file: {lines} lines, {size_mb:.1f} MB gzipped; {len(database)} ranges kept")
    print(f"load: {load_seconds:.2f} s; peak RSS grew {(rss_after - rss_before) / 1024:.0f} MB")
    for name, (micros, found) in timings.items():
        print(f"lookup {name}: {micros:.2f} µs each ({found}/{arguments.lookups} found)")


if __name__ == "__main__":
    main()
