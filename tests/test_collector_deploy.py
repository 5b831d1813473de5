"""Deployment files: compose parses, systemd units verify and run, every command they run exists."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from monitor.cli import SUBCOMMANDS, cli
from tests.fixtures.helper import start_helper_process, stop_helper_process

ROOT = Path(__file__).resolve().parent.parent
UNITS = sorted((ROOT / "deploy").glob("*.service"))
INSTALLED_BLOCKMON = "/opt/blockmon/.venv/bin/blockmon"  # where docs/deploy.md installs it


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


def read_unit(unit: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(unit.read_text())
    return parser


def test_the_units_we_document_exist() -> None:
    names = {unit.name for unit in UNITS}
    assert {"blockmon-probe.service", "blockmon-helper.service"} <= names


@pytest.mark.parametrize("unit", UNITS, ids=lambda path: path.name)
def test_systemd_unit_is_complete_and_runs_a_real_command(unit: Path) -> None:
    parser = read_unit(unit)
    assert {"Unit", "Service", "Install"} <= set(parser.sections())
    assert parser["Unit"].get("Description")
    exec_start = parser["Service"]["ExecStart"]
    assert exec_start.startswith(f"{INSTALLED_BLOCKMON} ")
    for words in blockmon_invocations(exec_start.removeprefix("/opt/blockmon/.venv/bin/")):
        assert_command_exists(words, unit.name)
    assert parser["Service"].get("NoNewPrivileges") == "yes"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                    reason="systemd-analyze is not installed (Debian package systemd)")
def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path: Path) -> None:
    # A root like the installed host's: the units in /etc, the system's own units beside them
    # (verify resolves After=/Wants=), and an executable where docs/deploy.md puts blockmon.
    system_units = next(path for path in (Path("/usr/lib/systemd/system"),
                                          Path("/lib/systemd/system")) if path.is_dir())
    shutil.copytree(system_units, tmp_path / "usr/lib/systemd/system", symlinks=True)
    executable = tmp_path / INSTALLED_BLOCKMON.lstrip("/")
    executable.parent.mkdir(parents=True)
    executable.write_text("#!/bin/sh\n")
    executable.chmod(0o755)
    installed = tmp_path / "etc/systemd/system"
    installed.mkdir(parents=True)
    for unit in UNITS:
        shutil.copy(unit, installed / unit.name)
    result = subprocess.run(
        ["systemd-analyze", "verify", f"--root={tmp_path}",
         *(str(installed / unit.name) for unit in UNITS)],
        capture_output=True, text=True, timeout=120,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@pytest.mark.parametrize("unit", UNITS, ids=lambda path: path.name)
def test_the_command_each_unit_runs_parses(unit: Path) -> None:
    words = shlex.split(read_unit(unit)["Service"]["ExecStart"])
    blockmon = str(Path(sys.executable).with_name("blockmon"))
    result = subprocess.run([blockmon, *words[1:], "--help"], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "BLOCKMON_CONFIG": ""})
    assert result.returncode == 0, result.stderr


def test_users_and_paths_of_the_units_are_the_ones_docs_deploy_creates() -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    assert "useradd --system --create-home --home-dir /var/lib/blockmon blockmon" in guide
    assert "sudo python3 -m venv .venv" in guide and "/opt/blockmon" in guide
    for unit in UNITS:
        service = read_unit(unit)["Service"]
        assert service.get("User") in ("blockmon", None), unit.name
        assert service.get("User") or service.get("DynamicUser") == "yes", unit.name
        for path in (service.get("WorkingDirectory"), service.get("ReadWritePaths")):
            assert path in (None, "/var/lib/blockmon"), f"{unit.name}: {path}"
        config = service.get("Environment", "").removeprefix("BLOCKMON_CONFIG=")
        if config.startswith("/etc/blockmon/"):
            assert config in guide, f"{unit.name}: docs/deploy.md never writes {config}"


def test_the_helper_unit_serves_with_its_credential_as_systemd_hands_it(tmp_path: Path) -> None:
    service = read_unit(ROOT / "deploy" / "blockmon-helper.service")["Service"]
    credential, source = service["LoadCredential"].split(":", 1)
    assert source == "/etc/blockmon/helper-token"
    variable, value = service["Environment"].split("=", 1)
    # %d is the unit's credentials directory; the helper must read the token from the file there.
    (tmp_path / credential).write_text("unit-token\n")
    words = shlex.split(service["ExecStart"])[2:]
    listen = words.index("--listen")
    arguments = words[:listen] + words[listen + 2:]  # the fixture listens on a free port
    process, url = start_helper_process(
        *arguments, env={variable: value.replace("%d", str(tmp_path))})
    try:
        codes = []
        for headers in ({}, {"Authorization": "Bearer unit-token"}):
            request = urllib.request.Request(url, data=b"{}", method="POST", headers={
                "Content-Type": "application/json", **headers})
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=10)
            codes.append(refused.value.code)
        # Without the token: 401; with it, past the token check to the empty request's 400.
        assert codes == [401, 400]
    finally:
        stop_helper_process(process)


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
