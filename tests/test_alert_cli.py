"""`blockmon alerts list / ack / test` on a real store and real receivers."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from click.testing import CliRunner

from monitor.alerts.store_tables import AlertTables
from monitor.cli import cli
from monitor.schema import PROBE_DATABASE
from monitor.store import open_store
from tests.conftest import PROJECT_ROOT
from tests.fixtures.alerts import SmtpServer, WebhookReceiver


def config_file(tmp_path: Path, alerts: str = "") -> Path:
    path = tmp_path / "blockmon.toml"
    path.write_text(f'[storage]\ndatabase = "sqlite:///{tmp_path / "b.db"}"\n'
                    f"[alerts]\n{alerts}\n", encoding="utf-8")
    return path


def seed_alerts(tmp_path: Path) -> list[int]:
    store = open_store(f"sqlite:///{tmp_path / 'b.db'}", migration_sets=PROBE_DATABASE)
    tables = AlertTables(store)
    ids = [tables.record_alert(dedup_key=f"k{n}", kind="block_confirmed", incident_id=None,
                               payload={"summary": f"Site {n} is blocked"},
                               channels=["webhook"], now=f"2026-11-25T18:0{n}:00Z")
           for n in range(3)]
    store.close()
    return [alert_id for alert_id in ids if alert_id is not None]


def test_list_and_ack(tmp_path: Path) -> None:
    config = config_file(tmp_path)
    ids = seed_alerts(tmp_path)
    runner = CliRunner()
    listed = runner.invoke(cli, ["-c", str(config), "alerts", "list"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert len(lines) == 3 and lines[0].split()[0] == str(ids[-1])
    assert "sent 0/1  Site 2 is blocked" in lines[0]

    acked = runner.invoke(cli, ["-c", str(config), "alerts", "ack", str(ids[0])])
    assert acked.exit_code == 0 and "acknowledged" in acked.output
    again = runner.invoke(cli, ["-c", str(config), "alerts", "ack", str(ids[0])])
    assert "was already acknowledged" in again.output
    assert len(runner.invoke(cli, ["-c", str(config), "alerts", "list"]).output
               .splitlines()) == 2
    acked_list = runner.invoke(cli, ["-c", str(config), "alerts", "list", "--state", "acked"])
    assert acked_list.output.startswith(f"{ids[0]:>5}  acked")
    missing = runner.invoke(cli, ["-c", str(config), "alerts", "ack", "999"])
    assert missing.exit_code == 1 and "alert 999: no such alert" in missing.output


def test_errors_are_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    no_db = runner.invoke(cli, ["-c", str(config_file(tmp_path)), "alerts", "list"])
    assert no_db.exit_code == 1 and "no database at" in no_db.output
    bad = config_file(tmp_path, 'kinds = ["block_confirmed", "typo"]')
    result = runner.invoke(cli, ["-c", str(bad), "alerts", "list"])
    assert result.exit_code == 1
    assert "[alerts] kinds: unknown alert kind 'typo'" in result.output
    unset = runner.invoke(cli, ["-c", str(config_file(tmp_path)), "alerts", "test", "slack"])
    assert unset.exit_code == 1
    assert "channel slack: not configured ([alerts] slack_url is unset)" in unset.output


async def run_blockmon(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from monitor.cli import main; main()", *args, cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)})
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode()


async def test_test_command_through_the_webhook(tmp_path: Path,
                                                webhook_receiver: WebhookReceiver) -> None:
    config = config_file(tmp_path, f'webhook_url = "{webhook_receiver.url}"\n'
                                   f'webhook_secret = "{webhook_receiver.secret}"')
    code, output = await run_blockmon("-c", str(config), "alerts", "test", "webhook")
    assert (code, output.strip()) == (0, "channel webhook: test alert accepted")
    [message] = webhook_receiver.received
    assert message["body"]["kind"] == "test"
    await webhook_receiver.stop()
    code, output = await run_blockmon("-c", str(config), "alerts", "test", "webhook")
    assert code == 1 and "channel webhook: not delivered: webhook: ClientConnectorError" in output


async def test_test_command_through_email(tmp_path: Path, smtp_server: SmtpServer) -> None:
    config = config_file(tmp_path, f'smtp_host = "{smtp_server.host}"\n'
                                   f"smtp_port = {smtp_server.port}\n"
                                   'smtp_username = "alerts"\nsmtp_password = "secret"\n'
                                   f'smtp_ca_file = "{smtp_server.ca_file}"\n'
                                   'email_to = ["ops@lab.test"]')
    code, output = await run_blockmon("-c", str(config), "alerts", "test", "email")
    assert (code, output.strip()) == (0, "channel email: test alert accepted")
    assert len(smtp_server.messages) == 1


def test_docs_cover_every_alert_kind_command_setting_and_metric() -> None:
    from monitor.alerts.metrics import MetricsSnapshot, render_metrics
    from monitor.alerts.vocabulary import ALERT_KINDS
    from monitor.commands.alerts import alerts
    from monitor.settings import setting_specs

    docs = (PROJECT_ROOT / "docs" / "alerts.md").read_text(encoding="utf-8")
    for kind in ALERT_KINDS:
        assert f"| `{kind}` |" in docs, f"docs/alerts.md lacks alert kind {kind}"
    for name in alerts.commands:
        assert f"blockmon alerts {name}" in docs, f"docs/alerts.md lacks `alerts {name}`"
    families = {line.split()[2] for line in render_metrics(MetricsSnapshot()).splitlines()
                if line.startswith("# TYPE")}
    for family in families:
        assert f"| `{family}` |" in docs, f"docs/alerts.md lacks metric {family}"
    for spec in setting_specs():
        if spec.section == "alerts" and spec.key.startswith(("webhook", "slack", "smtp",
                                                              "email")):
            assert f"`{spec.key}`" in docs, f"docs/alerts.md lacks channel setting {spec.key}"
