"""`blockmon demo`: a short run ends by itself with confirmed blocks and the honest sites fine."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.commands.demo import DEMO_BLOCKS, hostnames_of, render_next_steps

BLOCKMON = str(Path(sys.executable).parent / "blockmon")


def test_next_steps_name_the_demo_config_and_the_confirmed_blocks(tmp_path):
    states = [
        {"target_id": "azattyq", "state": "blocked", "method": "tls.timeout"},
        {"target_id": "fergana", "state": "blocked", "method": "dns.nxdomain"},
        {"target_id": "fergana", "state": "blocked", "method": "dns.nxdomain"},
        {"target_id": "today-kz", "state": "accessible", "method": None},
    ]
    text = render_next_steps(tmp_path, states, month="2026-11")
    assert ("3 URLs confirmed blocked, in 2 targets: azattyq (tls.timeout), fergana "
            "(dns.nxdomain); 1 URLs accessible") in text
    assert f"blockmon --config {tmp_path / 'blockmon.toml'} status" in text
    assert f"blockmon --config {tmp_path / 'blockmon.toml'} history azattyq" in text
    # Finding 4 (issue 15): the report goes to the demo's [reports] out_dir, which serve shows.
    assert f"report --period 2026-11    # into {tmp_path / 'reports'}" in text
    assert "--out" not in text
    assert f"blockmon --config {tmp_path / 'blockmon.toml'} serve" in text


def test_a_target_blocked_two_ways_counts_once(tmp_path):
    states = [
        {"target_id": "azattyq", "state": "blocked", "method": "tls.throttled"},
        {"target_id": "azattyq", "state": "blocked", "method": "tls.timeout"},
        {"target_id": "vk", "state": "blocked", "method": "tcp.reset"},
    ]
    text = render_next_steps(tmp_path, states, month="2026-12")
    assert ("3 URLs confirmed blocked, in 2 targets: azattyq (tls.throttled), azattyq "
            "(tls.timeout), vk (tcp.reset)") in text


def test_the_demo_settings_set_the_report_folder_serve_shows(tmp_path):
    from monitor.commands.demo import write_demo_config
    from monitor.settings import load_settings

    class Facts:
        censored_resolver, censored_source = "127.0.0.53", "127.0.0.2"
        ca_file, public_range = str(tmp_path / "ca.pem"), "127.0.0.0/8"

    config = write_demo_config(tmp_path, Facts(), "http://127.0.0.1:9/")  # type: ignore[arg-type]
    assert load_settings(config, environ={}).reports.out_dir == str(tmp_path / "reports")


def test_every_scripted_block_is_a_briefing_hostname():
    from targets import load_registry

    registry = load_registry()
    hostnames = hostnames_of(url for target in registry.targets for url in target.url_list())
    assert set(DEMO_BLOCKS) <= set(hostnames)


@pytest.mark.slow
def test_short_demo_confirms_blocks_and_keeps_honest_sites_accessible(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the demo's lab needs root")
    data_dir = tmp_path / "demo"
    finished = subprocess.run(
        [BLOCKMON, "demo", "--data-dir", str(data_dir), "--rounds", "2", "--round-seconds", "8"],
        capture_output=True, text=True, timeout=240)
    assert finished.returncode == 0, finished.stderr
    assert "round 2/2" in finished.stdout
    assert f"blockmon --config {data_dir / 'blockmon.toml'} status" in finished.stdout

    connection = sqlite3.connect(data_dir / "blockmon.db")
    states = {url: (state, method) for url, state, method in connection.execute(
        "SELECT url, state, method FROM target_state")}
    connection.close()
    blocked = {url: method for url, (state, method) in states.items() if state == "blocked"}
    assert blocked.get("https://fergana.agency/") == "dns.nxdomain"
    assert "https://www.azattyq.org/" in blocked
    # Throttled by SNI, as since 2022: real shaped traffic in the lab, named from the rates.
    assert blocked.get("https://rus.azattyq.org/") == "tls.throttled"
    # Sites the censor never touched stay accessible.
    for honest in ("https://example.com/", "https://today.kz/", "https://www.rferl.org/"):
        assert states[honest] == ("accessible", None), honest


def test_demo_without_root_says_why(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from monitor.cli import cli

    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    result = CliRunner().invoke(cli, ["demo", "--data-dir", str(tmp_path / "demo")], obj={})
    assert result.exit_code == 1
    assert "blockmon demo needs root" in result.stderr
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize("command", ["run", "demo"])
def test_every_option_is_documented(command):
    from monitor.cli import SUBCOMMANDS

    module_name, attribute = SUBCOMMANDS[command].split(":")
    click_command = getattr(__import__(module_name, fromlist=[attribute]), attribute)
    docs = (Path(__file__).resolve().parent.parent / "docs" / "monitor.md").read_text()
    for parameter in click_command.params:
        for option in parameter.opts:
            assert option in docs, f"docs/monitor.md does not mention blockmon {command} {option}"
