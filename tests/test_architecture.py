"""The architecture holds: dependencies point one way and the deciding code stays pure."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("targets", "probes", "monitor", "reports", "lab")

# What a layer may not import: targets <- probes <- monitor <- reports.
FORBIDDEN_LAYERS = {
    "targets": {"probes", "monitor", "reports", "lab"},
    "probes": {"monitor", "reports", "lab"},
}

# Modules that decide (verdicts, states, incidents, report content, validation) do no I/O.
PURE_MODULES = [
    "probes/analysis.py",
    "probes/analysis_compare.py",
    "probes/analysis_observe.py",
    "probes/fingerprints.py",
    "probes/bogons.py",
    "probes/certificates.py",
    "probes/dns_wire.py",
    "probes/pattern_hints.py",
    "probes/vocabulary.py",
    "monitor/state.py",
    "monitor/store/rows.py",
    "monitor/collector/validation.py",
    "monitor/alerts/incidents.py",
    "monitor/alerts/rules.py",
    "reports/build.py",
    "lab/policies.py",
    "lab/sniff.py",
]
IMPURE_IMPORTS = {
    "aiohttp", "asyncio", "socket", "ssl", "sqlite3", "sqlite_utils", "apscheduler",
    "psycopg", "aiosmtplib", "dns.resolver", "dns.asyncquery", "dns.query", "subprocess",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("layer", sorted(FORBIDDEN_LAYERS))
def test_layers_do_not_import_the_layers_above_them(layer: str) -> None:
    offenders = []
    for path in python_files(layer):
        for module in imported_modules(path):
            if module.split(".")[0] in FORBIDDEN_LAYERS[layer]:
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert offenders == []


@pytest.mark.parametrize("relative", PURE_MODULES)
def test_deciding_modules_do_no_io(relative: str) -> None:
    path = ROOT / relative
    assert path.exists(), f"{relative} is listed as pure but does not exist"
    impure = {
        module for module in imported_modules(path)
        if any(module == bad or module.startswith(bad + ".") for bad in IMPURE_IMPORTS)
    }
    assert impure == set(), f"{relative} imports {sorted(impure)}"


def test_every_module_says_what_it_is_for() -> None:
    missing = [
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in python_files(package)
        if ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) is None
        and path.read_text(encoding="utf-8").strip()
    ]
    assert missing == []
