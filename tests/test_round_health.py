"""Degraded rounds (findings 1, 2, 9): no or failing control helper, failing control targets and
measurements that cannot be stored make a round `degraded` with a one-line reason, exit 3 for
`run --once`; real lab sites and helper, a real closed port, a real full tmpfs."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.service.round_health import RoundEvidence, degraded_reason
from tests.fixtures.runner import write_lab_config, write_lab_registry


def measurement(*, control: bool = True, control_failure: str | None = None,
                accessible: bool = True, dns_failure: str | None = None) -> dict[str, Any]:
    return {"test_keys": {"control": {"http_request": {}} if control else {},
                          "control_failure": control_failure, "accessible": accessible,
                          "dns_experiment_failure": dns_failure}}


def test_a_round_with_controls_answering_is_judged() -> None:
    evidence = RoundEvidence()
    for _ in range(3):
        evidence.add(measurement(), is_control_target=False)
    evidence.add(measurement(), is_control_target=True)
    assert degraded_reason(evidence) is None


def test_each_reason_is_named_on_one_line() -> None:
    evidence = RoundEvidence(helper_configured=True)
    for _ in range(3):
        evidence.add(measurement(control=False, control_failure="connection_refused"),
                     is_control_target=False)
    evidence.add(measurement(accessible=False, dns_failure="dns_nxdomain_error",
                             control_failure="connection_refused"), is_control_target=True)
    evidence.add_not_stored("OperationalError: database or disk is full")
    reason = degraded_reason(evidence)
    assert reason is not None and "\n" not in reason
    assert "1 of 4 measurements not stored (OperationalError: database or disk is full)" in reason
    assert "control helper failing: 4 of 4 measurements without a control " \
           "(connection_refused x4)" in reason
    assert "all 1 control target measurements failed (dns_nxdomain_error x1)" in reason


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def runs(database: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(database) as connection:
        return connection.execute("SELECT status, reason FROM runs").fetchall()


def run_once(config: Path) -> Any:
    return CliRunner().invoke(cli, ["--config", str(config), "run", "--once"], obj={})


def test_a_closed_helper_port_makes_the_round_degraded_and_exit_3(tmp_path, lab_info) -> None:
    registry = write_lab_registry(tmp_path / "registry.toml", "lab",
                                  {"honest": ["https://ok.lab.test/"]})
    config = write_lab_config(tmp_path, lab_info, registry, "lab",
                              helper_url=f"http://127.0.0.1:{closed_port()}/")
    result = run_once(config)
    assert result.exit_code == 3, result.output
    line = "round over lab degraded: control helper failing: 1 of 1 measurements without a " \
           "control (connection_refused x1)"
    assert line in result.stderr.splitlines()
    assert "round degraded" in result.stdout.splitlines()[-1]
    [(status, reason)] = runs(tmp_path / "data" / "blockmon.db")
    assert status == "degraded" and reason.startswith("control helper failing")


def test_no_helper_configured_makes_the_round_degraded(tmp_path, lab_info) -> None:
    registry = write_lab_registry(tmp_path / "registry.toml", "lab",
                                  {"honest": ["https://ok.lab.test/"]})
    result = run_once(write_lab_config(tmp_path, lab_info, registry, "lab"))
    assert result.exit_code == 3, result.output
    assert "no control helper: [probe] helper_url is not set" in result.stderr
    assert "blockmon doctor" in result.stderr


def test_every_control_target_failing_makes_the_round_degraded(tmp_path, lab_info,
                                                               helper_url) -> None:
    registry = tmp_path / "registry.toml"
    registry.write_text(
        '[list]\nname = "lab"\n\n'
        '[[target]]\nid = "honest"\nname = "honest"\ncategory_code = "NEWS"\n'
        '[[target.url]]\nurl = "https://ok.lab.test/"\nrole = "content"\n\n'
        # A control the lab's resolver does not know: as a hand-started lab that lacks them.
        '[[target]]\nid = "control-gone"\nname = "control"\ncategory_code = "CTRL"\n'
        'control = true\n[[target.url]]\nurl = "https://nxdomain.lab.test/"\n'
        'role = "content"\n')
    result = run_once(write_lab_config(tmp_path, lab_info, registry, "lab",
                                       helper_url=helper_url,
                                       extra="[schedule]\nconfirm_retests = 0\n"))
    assert result.exit_code == 3, result.output
    assert "all 1 control target measurements failed (dns_nxdomain_error x1)" in result.stderr


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs of our own (root only): a data directory that can fill up for real."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point = tmp_path / "bm-trust-tiny"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "bm-trust-tiny", str(mount_point)],
                   check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path) -> None:
    with (directory / "filler").open("wb") as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
                handle.flush()
        except OSError:
            pass


async def test_a_full_disk_mid_round_makes_it_degraded_not_ok(tiny_disk: Path) -> None:
    from monitor.schema import PROBE_DATABASE
    from monitor.service.runner import Runner, RunnerConfig, StoreRecorder
    from monitor.settings import Settings
    from monitor.store import open_store
    from monitor.store.writer import StoreWriter
    from tests.fixtures.runner import ScriptedProbe, make_target_list

    database = tiny_disk / "blockmon.db"
    store = open_store(f"sqlite:///{database}", migration_sets=PROBE_DATABASE)
    writer = StoreWriter(store)
    target_list = make_target_list("news", {f"host{n}.example": 10 for n in range(10)})
    await writer.call(store.save_targets, target_list.targets)
    probe = ScriptedProbe()

    async def measure_then_fill(url: str, options: Any, **kwargs: Any) -> dict[str, Any]:
        if len(probe.calls) == 5 and not (tiny_disk / "filler").exists():
            fill(tiny_disk)  # the disk fills up while the round goes on
        return await probe(url, options, **kwargs)

    settings = Settings()
    runner = Runner(settings, StoreRecorder(store, writer.call, vantage_id="local"),
                    target_list, settings.probe.to_probe_options(),
                    config=RunnerConfig(confirm_retests=0, concurrency=1), measure=measure_then_fill)
    runner.probe_options = runner.probe_options.__class__(
        **{**vars_of(runner.probe_options), "helper_url": "http://helper.example/"})
    try:
        result = await runner.run_round("news")
    finally:
        await writer.close()
    assert result.status == "degraded"
    assert result.evidence.not_stored > 50
    assert "measurements not stored" in (result.reason or "")
    assert "full" in (result.reason or "")
    (tiny_disk / "filler").unlink()
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def vars_of(options: Any) -> dict[str, Any]:
    from dataclasses import fields

    return {item.name: getattr(options, item.name) for item in fields(options)}
