"""The helper's per-page CPU outside the network: body simhash, page description, certificates.

Interleaves this tree's code with another tree's (--before, e.g. a `git archive` of main), pass
by pass, and reports the medians in µs per page / per certificate, on the lab's inputs: the home
pages of bulk sites (2-8 KB), and a new leaf certificate per site from one CA (the CA's name seen
before, the site's not). OONI's real bodies and certificates are measured too when present.

  PYTHONPATH=. python benchmarks/bench_helper_page.py --before /tmp/before [--passes 41]
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from cryptography.hazmat.primitives import serialization
from other_tree import load_module

from lab import bulk_hostname
from lab.certificates import issue_leaf, make_lab_root
from lab.pages import render_site_page
from probes.exchange import Exchange

PROJECT_ROOT = Path(__file__).resolve().parents[1]
OONI_REAL = PROJECT_ROOT.parent / "shared" / "data" / "ooni-real" / "measurements.jsonl"
SITES = 200


def variants(tree: Path, label: str) -> dict[str, ModuleType]:
    analysis = load_module(tree, "probes/analysis_compare.py", f"{label}_analysis_compare")
    certificates = load_module(tree, "probes/certificates.py", f"{label}_certificates")
    page = load_module(tree, "probes/helper/page.py", f"{label}_page")
    page.text_simhash = analysis.text_simhash  # type: ignore[attr-defined]  # its tree's simhash
    return {"analysis": analysis, "certificates": certificates, "page": page}


def lab_pages() -> list[str]:
    return [render_site_page(bulk_hostname(number), "/") for number in range(1, SITES + 1)]


def lab_leaves() -> list[bytes]:
    root = make_lab_root()
    return [
        issue_leaf(root, bulk_hostname(number))[0].public_bytes(serialization.Encoding.DER)
        for number in range(1, SITES + 1)
    ]


def real_inputs() -> tuple[list[str], list[bytes]]:
    bodies: list[str] = []
    ders: list[bytes] = []
    if not OONI_REAL.exists():
        return bodies, ders
    for line in OONI_REAL.read_text(encoding="utf-8").splitlines():
        test_keys = json.loads(line).get("test_keys") or {}
        for request in test_keys.get("requests") or []:
            body = (request.get("response") or {}).get("body")
            if isinstance(body, str):
                bodies.append(body)
        for handshake in test_keys.get("tls_handshakes") or []:
            ders += [base64.b64decode(entry["data"]) for entry in handshake["peer_certificates"] or []]
    return bodies, list(dict.fromkeys(ders))


def describe_pass(modules: dict[str, ModuleType], exchanges: Sequence[Exchange]) -> Callable[[], None]:
    fetcher = object.__new__(modules["page"].PageFetcher)

    def run() -> None:
        fetcher._simhashes = OrderedDict()  # every page new, as on distinct sites
        for exchange in exchanges:
            result: dict[str, Any] = {}
            fetcher._describe(exchange, result, modules["page"].PageBody())

    return run


def certificate_pass(modules: dict[str, ModuleType], ders: Sequence[bytes]) -> Callable[[], None]:
    describe = modules["certificates"]._cached_description.__wrapped__  # uncached: new leaves

    def run() -> None:
        for der in ders:
            describe(der)

    return run


def simhash_pass(
    modules: dict[str, ModuleType], texts: Sequence[str], *, cold: bool = False
) -> Callable[[], None]:
    simhash = modules["analysis"].text_simhash
    spread_word = modules["analysis"]._spread_word

    def run() -> None:
        if cold:
            spread_word.cache_clear()  # every word new, as on sites never seen
        for text in texts:
            simhash(text)

    return run


def interleaved(runs: dict[str, Callable[[], None]], count: int, passes: int) -> dict[str, float]:
    """Median µs per item of each run, the runs taking turns pass after pass."""
    times: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(passes):
        for label, run in runs.items():
            started = time.perf_counter_ns()
            run()
            times[label].append((time.perf_counter_ns() - started) / count / 1000)
    return {label: statistics.median(values) for label, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the tree to compare with")
    parser.add_argument("--passes", type=int, default=41)
    arguments = parser.parse_args()
    trees = {"before": variants(arguments.before, "before"), "after": variants(PROJECT_ROOT, "after")}
    pages, leaves = lab_pages(), lab_leaves()
    real_bodies, real_ders = real_inputs()
    headers = [("Content-Type", "text/html; charset=utf-8"), ("Server", "Python/3.11 aiohttp")]
    exchanges = [Exchange(200, headers, page.encode(), False, True) for page in pages]
    cases: list[tuple[str, int, Callable[[dict[str, ModuleType]], Callable[[], None]]]] = [
        ("simhash, lab page", len(pages), lambda m: simhash_pass(m, pages)),
        ("_describe, lab page", len(pages), lambda m: describe_pass(m, exchanges)),
        ("certificate, lab leaf", len(leaves), lambda m: certificate_pass(m, leaves)),
    ]
    if real_bodies:
        cases.append(("simhash, OONI body", len(real_bodies), lambda m: simhash_pass(m, real_bodies)))
        cases.append(("simhash, OONI body, words all new", len(real_bodies),
                      lambda m: simhash_pass(m, real_bodies, cold=True)))
        cases.append(("certificate, OONI", len(real_ders), lambda m: certificate_pass(m, real_ders)))
    print(f"{'µs per item (median of ' + str(arguments.passes) + ' passes)':<44}{'before':>9}{'after':>9}")
    for label, count, make in cases:
        medians = interleaved({tree: make(modules) for tree, modules in trees.items()}, count,
                              arguments.passes)
        print(f"{label:<44}{medians['before']:>9.1f}{medians['after']:>9.1f}"
              f"{100 * (medians['after'] / medians['before'] - 1):>+8.0f}%")


if __name__ == "__main__":
    main()
