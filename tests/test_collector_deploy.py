"""Deployment files: compose parses, systemd units are complete, every command they run exists."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest

from monitor.cli import SUBCOMMANDS, cli

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted((ROOT / "deploy").glob("*.service"))


def blockmon_invocations(text: str) -> list[list[str]]:
    """Each `blockmon ...` command found outside comments, split into words."""
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    found = []
    for match in re.finditer(r"\bblockmon((?: [a-z][a-z-]*)+)", code):
        found.append(match.group(1).split())
    return found


def assert_command_exists(words: list[str], where: str) -> None:
    assert words[0] in SUBCOMMANDS, f"{where}: 'blockmon {words[0]}' is not a command"
    command = cli.get_command(None, words[0])  # type: ignore[arg-type]
    assert command is not None, f"{where}: 'blockmon {words[0]}' does not load"
    if len(words) > 1 and hasattr(command, "commands"):
        assert words[1] in command.commands, f"{where}: 'blockmon {' '.join(words[:2])}' unknown"


def test_the_units_we_document_exist() -> None:
    names = {unit.name for unit in UNITS}
    assert {"blockmon-probe.service", "blockmon-helper.service"} <= names


@pytest.mark.parametrize("unit", UNITS, ids=lambda path: path.name)
def test_systemd_unit_is_complete_and_runs_a_real_command(unit: Path) -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(unit.read_text())
    assert {"Unit", "Service", "Install"} <= set(parser.sections())
    assert parser["Unit"].get("Description")
    exec_start = parser["Service"]["ExecStart"]
    assert exec_start.startswith("/opt/blockmon/.venv/bin/blockmon ")
    for words in blockmon_invocations(exec_start.removeprefix("/opt/blockmon/.venv/bin/")):
        assert_command_exists(words, unit.name)
    assert parser["Service"].get("NoNewPrivileges") == "yes"


def test_compose_file_parses_and_runs_real_commands() -> None:
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed; compose file not parsed")
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = document["services"]
    assert {"postgres", "collector", "helper", "probe"} <= set(services)
    for name in ("postgres", "collector", "helper"):
        assert "healthcheck" in services[name], f"{name} has no health check"
    assert services["collector"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert {"pgdata", "probe-data"} <= set(document["volumes"])


def test_compose_and_dockerfile_name_real_commands_and_paths() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    commands = re.findall(r'command: \["([a-z-]+)"', compose)
    assert {"collector", "helper"} <= set(commands)
    for command in commands:
        assert_command_exists([command], "docker-compose.yml")
    for words in blockmon_invocations(compose):
        assert_command_exists(words, "docker-compose.yml")
    for source in re.findall(r"^COPY (\S+)", (ROOT / "Dockerfile").read_text(), re.MULTILINE):
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"


def test_every_route_and_collector_command_is_documented() -> None:
    from aiohttp import web

    from monitor.collector.routes import add_routes
    from monitor.commands.collector import collector

    document = (ROOT / "docs" / "collector-api.md").read_text()
    app = web.Application()
    add_routes(app)
    for route in app.router.routes():
        if route.method == "HEAD":  # aiohttp adds HEAD beside every GET
            continue
        heading = f"## {route.method} {route.resource.canonical}"  # type: ignore[union-attr]
        assert heading in document, f"docs/collector-api.md lacks '{heading}'"
    for name in collector.commands:
        assert f"`blockmon collector {name}" in document, f"'blockmon collector {name}' undocumented"
