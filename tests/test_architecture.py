"""The architecture holds: dependencies point one way, the database has one room, deciding code is pure.

The layers, lowest first (docs/architecture.md draws them):
    targets <- probes <- monitor core <- reports <- monitor commands and cli
where the monitor core is everything in monitor/ except monitor/commands/ and monitor/cli.py.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("targets", "probes", "monitor", "reports", "lab")

ROOF = ("monitor.commands", "monitor.cli")
DATABASE_DRIVERS = ("sqlite3", "sqlite_utils", "psycopg")

# Modules that decide (verdicts, states, incidents, report content, validation) do no I/O.
PURE_MODULES = [
    "probes/analysis.py",
    "probes/analysis_compare.py",
    "probes/analysis_decide.py",
    "probes/analysis_observe.py",
    "probes/analysis_throttle.py",
    "probes/throughput.py",
    "probes/fingerprints.py",
    "probes/fingerprints_match.py",
    "probes/measurement_types.py",
    "probes/bogons.py",
    "probes/certificates.py",
    "probes/control_protocol.py",
    "probes/dns_wire.py",
    "probes/pattern_hints.py",
    "probes/vocabulary.py",
    "probes/ooni/encoding.py",
    "probes/ooni/export.py",
    "probes/ooni/legacy_failures.py",
    "probes/ooni/normalise.py",
    "probes/ooni/rejudge.py",
    "probes/ooni/vantage.py",
    "monitor/state.py",
    "monitor/settings/sections.py",
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


@dataclass(frozen=True, slots=True)
class Import:
    path: str  # relative to the project root
    module: str  # the module imported, absolute
    line: int
    in_function: bool
    explained: bool  # a comment on its line or the line above says why it is there


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, path: Path) -> str:
    if node.level == 0:
        return node.module or ""
    package = _module_of(path).split(".")
    if path.name != "__init__.py":
        package.pop()
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(path: Path) -> list[Import]:
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source, filename=str(path))
    inside: set[int] = set()
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            inside.update(id(node) for node in ast.walk(function))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [_absolute(node, path)]
        else:
            continue
        # A comment on the import's line, or above the group of imports it stands in.
        above = node.lineno - 2
        while above >= 0 and lines[above].strip().startswith(("import ", "from ")):
            above -= 1
        explained = "#" in lines[node.lineno - 1] or (
            above >= 0 and lines[above].strip().startswith("#"))
        found.extend(Import(str(path.relative_to(ROOT)), module, node.lineno, id(node) in inside,
                            explained) for module in modules)
    return found


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def all_imports() -> list[Import]:
    return [found for package in PACKAGES for path in python_files(package)
            for found in imports_of(path)]


def _is(module: str, *prefixes: str) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def layer_of(module: str) -> str:
    """targets, probes, core, reports, roof or lab (or "" for a module outside the project)."""
    if _is(module, *ROOF):
        return "roof"
    if _is(module, "monitor"):
        return "core"
    for package in ("targets", "probes", "reports", "lab"):
        if _is(module, package):
            return package
    return ""


# What each layer may import of the project; lab is the offline test network, outside the stack.
ALLOWED = {
    "targets": {"targets"},
    "probes": {"targets", "probes"},
    "core": {"targets", "probes", "core"},
    "reports": {"targets", "probes", "core", "reports"},
    "roof": {"targets", "probes", "core", "reports", "roof", "lab"},
    "lab": {"lab"},
}


def test_layers_import_only_the_layers_below_them() -> None:
    offenders = [
        f"{found.path}:{found.line} imports {found.module}"
        for found in all_imports()
        if layer_of(found.module) and layer_of(found.module)
        not in ALLOWED[layer_of(_module_of(ROOT / found.path))]
    ]
    assert offenders == []


def test_the_layer_rule_is_checked_on_a_climbing_import(tmp_path: Path) -> None:
    # The checker itself must see a climb: an import of reports from the core is one.
    assert layer_of("monitor.store.queries") == "core"
    assert layer_of("monitor.commands.run") == "roof"
    assert "reports" not in ALLOWED[layer_of("monitor.service.runner")]
    assert "core" not in ALLOWED[layer_of("probes.analysis")]


def test_only_the_store_room_imports_database_drivers() -> None:
    offenders = [
        f"{found.path}:{found.line} imports {found.module}"
        for found in all_imports()
        if _is(found.module, *DATABASE_DRIVERS) and not found.path.startswith("monitor/store/")
    ]
    assert offenders == []


def test_the_store_room_imports_nothing_of_the_monitor_above_it() -> None:
    offenders = [
        f"{found.path}:{found.line} imports {found.module}"
        for found in all_imports()
        if found.path.startswith("monitor/store/") and _is(found.module, "monitor")
        and not _is(found.module, "monitor.store")
    ]
    assert offenders == []


@pytest.mark.parametrize(("one", "other"), [("monitor/service/", "monitor.collector"),
                                            ("monitor/collector/", "monitor.service")])
def test_service_and_collector_never_import_each_other(one: str, other: str) -> None:
    offenders = [f"{found.path}:{found.line} imports {found.module}" for found in all_imports()
                 if found.path.startswith(one) and _is(found.module, other)]
    assert offenders == []


def test_imports_inside_functions_say_why() -> None:
    offenders = [f"{found.path}:{found.line} imports {found.module}" for found in all_imports()
                 if found.in_function and not found.explained]
    assert offenders == []


def test_no_module_is_over_500_lines() -> None:
    long = [f"{path.relative_to(ROOT)}: {count} lines" for package in PACKAGES
            for path in python_files(package)
            if (count := len(path.read_text(encoding="utf-8").splitlines())) > 500]
    assert long == []


def test_the_seams_are_typed() -> None:
    untyped = [f"{path.relative_to(ROOT)}:{number}" for package in PACKAGES
               for path in python_files(package)
               for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
               if "store: Any" in line or "settings: Any" in line]
    assert untyped == []


@pytest.mark.parametrize("relative", PURE_MODULES)
def test_deciding_modules_do_no_io(relative: str) -> None:
    path = ROOT / relative
    assert path.exists(), f"{relative} is listed as pure but does not exist"
    impure = {found.module for found in imports_of(path) if _is(found.module, *IMPURE_IMPORTS)}
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
