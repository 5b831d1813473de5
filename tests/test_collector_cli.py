"""A probe enrols, checks in and uploads through `blockmon collector` commands (real processes)."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

from monitor.store import open_store
from tests.fixtures.collector import CollectorProcess, run_blockmon, sample_measurement


def test_probe_registers_checks_in_and_uploads(sqlite_collector: CollectorProcess, tmp_path: Path) -> None:
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    token_file = probe_dir / "token"
    (probe_dir / "blockmon.toml").write_text(
        '[probe]\nvantage_id = "kz-cli"\ncc = "KZ"\nasn = "AS9198"\n'
        f'[storage]\ndata_dir = "{probe_dir}"\n'
        f'[collector]\nurl = "{sqlite_collector.url}"\ntoken_file = "{token_file}"\n'
    )
    (probe_dir / "token").write_text("placeholder")  # token_file must exist to load settings
    secret = sqlite_collector.enrol("--vantage", "kz-cli")
    os.environ["BLOCKMON_ENROLMENT_SECRET"] = secret
    try:
        result = run_blockmon("collector", "register", "--token-file", str(token_file), cwd=probe_dir)
    finally:
        del os.environ["BLOCKMON_ENROLMENT_SECRET"]
    assert result.returncode == 0, result.stderr
    assert "registered as kz-cli" in result.stdout
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text().startswith("bmp_")
    # Where the probe is comes from its [probe] settings, kept on its row at the collector.
    with sqlite3.connect(sqlite_collector.database.removeprefix("sqlite:///")) as connection:
        assert connection.execute("SELECT probe_cc, probe_asn FROM probes WHERE probe_id = "
                                  "'kz-cli'").fetchall() == [("KZ", "AS9198")]

    again = run_blockmon("collector", "register", "--secret", secret, "--token-file",
                         str(probe_dir / "other"), cwd=probe_dir)
    assert again.returncode != 0 and "enrolment_secret" in again.stderr

    registry = tmp_path / "central.toml"
    registry.write_text('[[target]]\nid = "kaztag"\nname = "KazTAG"\ncategory_code = "NEWS"\n'
                        '[[target.url]]\nurl = "https://kaztag.kz/"\nrole = "home"\n')
    assert run_blockmon("collector", "publish-targets", str(registry), "--database",
                        sqlite_collector.database, cwd=tmp_path).returncode == 0
    saved = probe_dir / "targets.toml"
    checked = run_blockmon("collector", "check-in", "--save-targets", str(saved), cwd=probe_dir)
    assert checked.returncode == 0, checked.stderr
    assert saved.read_text() == registry.read_text()
    unchanged = run_blockmon("collector", "check-in", "--save-targets", str(saved), cwd=probe_dir)
    assert "unchanged" in unchanged.stdout

    store = open_store(f"sqlite:///{probe_dir / 'blockmon.db'}", spool=True)
    uids = []
    for number in range(12):
        measurement = sample_measurement(number, vantage_id="kz-cli")
        store.save_measurement(measurement, target_id="azattyq")
        uids.append(measurement["measurement_uid"])
    store.close()
    uploaded = run_blockmon("collector", "upload", cwd=probe_dir)
    assert uploaded.returncode == 0, uploaded.stderr
    assert "uploaded 12 (12 new at the collector), refused 0, waiting 0" in uploaded.stdout
    with sqlite3.connect(sqlite_collector.database.removeprefix("sqlite:///")) as connection:
        stored = [row[0] for row in connection.execute("SELECT uid FROM measurements ORDER BY uid")]
    assert stored == sorted(uids)


def test_commands_name_bad_input(tmp_path: Path) -> None:
    result = run_blockmon("collector", "--database", "mysql://x", "probes", cwd=tmp_path)
    assert result.returncode != 0 and "mysql://x" in result.stderr
    result = run_blockmon("collector", "--listen", "nowhere", "--database",
                          f"sqlite:///{tmp_path / 'c.db'}", cwd=tmp_path)
    assert result.returncode != 0 and "--listen" in result.stderr and "HOST:PORT" in result.stderr
    result = run_blockmon("collector", "upload", cwd=tmp_path)
    assert result.returncode != 0 and "[collector] url" in result.stderr
    result = run_blockmon("collector", "probes", "--database", "postgresql://nobody@127.0.0.1:1/x",
                          cwd=tmp_path)
    assert result.returncode != 0 and "cannot connect" in result.stderr


def test_a_standing_secret_from_settings_enrols_many_until_changed(tmp_path: Path) -> None:
    from tests.fixtures.collector import http_json

    collector = CollectorProcess(database=f"sqlite:///{tmp_path / 'c.db'}", workdir=tmp_path,
                                 environment={"BLOCKMON_COLLECTOR_ENROLMENT_SECRET": "first-secret"})
    collector.start()
    try:
        def register(vantage: str, secret: str) -> int:
            return http_json("POST", f"{collector.url}/api/v1/register",
                             {"enrolment_secret": secret, "vantage_id": vantage})[0]

        assert register("kz-a", "first-secret") == 201
        assert register("kz-b", "first-secret") == 201
        collector.stop()
        collector.environment["BLOCKMON_COLLECTOR_ENROLMENT_SECRET"] = "second-secret"
        collector.start()
        assert register("kz-c", "first-secret") == 403
        assert register("kz-c", "second-secret") == 201
        collector.stop()
        del collector.environment["BLOCKMON_COLLECTOR_ENROLMENT_SECRET"]
        collector.start()  # the setting removed: no standing secret any more
        assert register("kz-d", "second-secret") == 403
    finally:
        collector.stop()
    with sqlite3.connect(tmp_path / "c.db") as connection:
        hashes = [row[0] for row in connection.execute("SELECT secret_hash FROM enrolment_secrets")]
    assert hashes and not any("secret" in value for value in hashes)


def test_a_revoked_probe_cannot_enrol_again_with_a_secret_from_before(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from monitor.collector.registry import Registry
    from monitor.store.database import DatabaseUrl, connect

    database = connect(DatabaseUrl.parse(f"sqlite:///{tmp_path / 'c.db'}"))
    registry = Registry(database)
    registry.migrate()
    start = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
    registry.ensure_standing_secret("standing", now=start)
    request = {"enrolment_secret": "standing", "vantage_id": "kz-rogue", "probe_cc": "KZ",
               "probe_asn": "AS9198", "probe_network_name": ""}
    assert registry.register_probe(request, now=start).outcome == "registered"
    assert registry.revoke_probe("kz-rogue", now=start + timedelta(hours=1))
    later = start + timedelta(hours=2)
    # The standing secret the revoked probe enrolled with does not undo the revocation.
    assert registry.register_probe(request, now=later).outcome == "vantage_revoked"
    fresh = registry.create_enrolment_secret(now=later, vantage_id="kz-rogue")
    again = registry.register_probe({**request, "enrolment_secret": fresh}, now=later)
    assert again.outcome == "registered" and again.token is not None
    assert registry.authenticate(again.token)[0] == "valid"
    database.close()
