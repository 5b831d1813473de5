"""`blockmon doctor` against the real lab: its helper, resolvers and sites, a closed port, a
real webhook receiver for --send-test; and `init` pointing at it (finding 1)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from monitor.cli import cli
from tests.fixtures.runner import write_lab_config


def registry_with_control(path: Path, control_url: str) -> Path:
    path.write_text(
        '[list]\nname = "lab"\n\n'
        '[[target]]\nid = "honest"\nname = "honest"\ncategory_code = "NEWS"\n'
        '[[target.url]]\nurl = "https://ok.lab.test/"\nrole = "content"\n\n'
        '[[target]]\nid = "control-lab"\nname = "control"\ncategory_code = "CTRL"\n'
        f'control = true\n[[target.url]]\nurl = "{control_url}"\nrole = "content"\n')
    return path


def doctor(config: Path, *arguments: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(config), "doctor", *arguments], obj={})


async def test_doctor_passes_on_a_working_probe_and_sends_a_test_alert(
        tmp_path, lab_info, helper_url, webhook_receiver) -> None:
    registry = registry_with_control(tmp_path / "registry.toml", "https://ok.lab.test/about")
    config = write_lab_config(
        tmp_path, lab_info, registry, "lab", helper_url=helper_url,
        extra=f'[alerts]\nenabled = true\nwebhook_url = "{webhook_receiver.url}"\n'
              f'webhook_secret = "{webhook_receiver.secret}"\n')
    # In a thread: the receiver answers on this test's event loop.
    result = await asyncio.to_thread(doctor, config, "--send-test")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[-1] == "all checks passed"
    names = [line.split(": ")[0] for line in lines[:-1]]
    assert names == ["ok   settings", "ok   database", "ok   helper", "ok   clock",
                     f"ok   resolver {lab_info.censored_resolver}", "ok   control control-lab",
                     "skip collector", "ok   channel webhook"]
    assert [item["body"]["kind"] for item in webhook_receiver.received] == ["test"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_doctor_fails_naming_a_closed_helper_and_an_unreachable_control(tmp_path, lab_info
                                                                       ) -> None:
    registry = registry_with_control(tmp_path / "registry.toml", "https://nxdomain.lab.test/")
    config = write_lab_config(tmp_path, lab_info, registry, "lab",
                              helper_url=f"http://127.0.0.1:{closed_port()}/")
    result = doctor(config)
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(line.startswith("FAIL helper: http://127.0.0.1:") and "ClientConnectorError"
               in line for line in lines)
    assert "FAIL control control-lab: https://nxdomain.lab.test/ not reachable " \
           "(dns_nxdomain_error)" in lines
    assert lines[-1] == "2 checks failed: helper, control control-lab"


def test_doctor_without_a_helper_and_init_naming_helper_url(tmp_path, lab_info) -> None:
    registry = registry_with_control(tmp_path / "registry.toml", "https://ok.lab.test/")
    result = doctor(write_lab_config(tmp_path, lab_info, registry, "lab"))
    assert result.exit_code == 1
    assert "FAIL helper: [probe] helper_url is not set: every round is degraded" in result.output
    written = CliRunner().invoke(cli, ["init", "--path", str(tmp_path / "new.toml")], obj={})
    assert written.exit_code == 0
    assert "helper_url" in written.output and "blockmon doctor" in written.output


def test_doctor_names_a_corrupt_settings_file_in_one_line(tmp_path) -> None:
    config = tmp_path / "blockmon.toml"
    config.write_text("[probe]\nconcurrency = 0\n")
    result = doctor(config)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        line for line in result.output.splitlines() if line.startswith("FAIL settings:")]


def collector_line(output: str) -> str:
    [line] = [line for line in output.splitlines() if line.split(": ")[0].endswith(" collector")]
    return line


def test_doctor_checks_enrolment_at_a_real_collector(tmp_path, lab_info, helper_url,
                                                     sqlite_collector) -> None:
    """The collector check against a `blockmon collector` process: an enrolled token passes
    naming the probe, a token the collector does not know fails, and so does no token."""
    from tests.fixtures.collector import http_json, register_probe

    token = register_probe(sqlite_collector, "kz-almaty-1")
    status, answer = http_json("POST", f"{sqlite_collector.url}/api/v1/check-in",
                               {"software_version": "doctor-test"}, token=token)
    assert status == 200, answer
    registry = registry_with_control(tmp_path / "registry.toml", "https://ok.lab.test/about")

    def doctor_with(collector: str) -> Any:
        return doctor(write_lab_config(tmp_path, lab_info, registry, "lab",
                                       helper_url=helper_url,
                                       extra=f'[collector]\nurl = "{sqlite_collector.url}/"\n'
                                             f"{collector}"))

    enrolled = doctor_with(f'token = "{token}"\n')
    assert enrolled.exit_code == 0, enrolled.output
    assert collector_line(enrolled.output) == \
        f"ok   collector: {sqlite_collector.url}/: enrolled as {answer['probe_id']}"

    unknown = doctor_with('token = "not-a-token-this-collector-issued"\n')
    assert unknown.exit_code == 1
    line = collector_line(unknown.output)
    assert line.startswith("FAIL collector: ") and "401" in line, line

    missing = doctor_with("")
    assert missing.exit_code == 1
    assert collector_line(missing.output) == (
        f"FAIL collector: {sqlite_collector.url}/: no [collector] token: run "
        "`blockmon collector enrol` first")
