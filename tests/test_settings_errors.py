"""Settings errors as one line each (findings 7 and 12): real files, real environments."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.settings import SettingsError, load_settings


def one_line_error(tmp_path: Path, text: bytes | str, environ: dict[str, str] | None = None
                   ) -> str:
    path = tmp_path / "blockmon.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(SettingsError) as raised:
        load_settings(path, environ=environ or {})
    message = str(raised.value)
    assert "\n" not in message
    return message


def test_invalid_utf8_names_the_file(tmp_path: Path) -> None:
    message = one_line_error(tmp_path, b'[probe]\nvantage_id = "caf\xe9"\n')
    assert message == f"{tmp_path / 'blockmon.toml'}: not UTF-8 (byte 25)"


@pytest.mark.parametrize(("toml", "expected"), [
    ('[schedule]\ncron = "61 * * * *"\n', "[schedule] cron: is not a crontab expression"),
    ("[schedule]\ninterval_minutes = 100000000000\n",
     "[schedule] interval_minutes: must be from 1 to 525600"),
    ("[schedule]\njitter_seconds = 10000000000000\n",
     "[schedule] jitter_seconds: must be from 0 to 86400"),
    ("[alerts]\nsmtp_port = 99999\n", "[alerts] smtp_port: must be from 1 to 65535"),
])
def test_bad_values_are_one_line_naming_the_key(tmp_path: Path, toml: str, expected: str) -> None:
    assert expected in one_line_error(tmp_path, toml)


def test_a_mistyped_environment_variable_is_an_error(tmp_path: Path) -> None:
    message = one_line_error(tmp_path, "", {"BLOCKMON_PROBE_CONCURENCY": "4"})
    assert message == ("environment BLOCKMON_PROBE_CONCURENCY: unknown setting of [probe]; "
                       "did you mean BLOCKMON_PROBE_CONCURRENCY?")
    # Variables of other tools (compose, the lab) are not settings.
    path = tmp_path / "blockmon.toml"
    assert load_settings(path, environ={"BLOCKMON_IMAGE": "x", "BLOCKMON_CONFIG": "y"})


def test_relative_paths_in_a_settings_file_follow_the_file(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    config_dir = tmp_path / "etc"
    config_dir.mkdir()
    (config_dir / "hook.secret").write_text("s3cret\n")
    path = config_dir / "blockmon.toml"
    path.write_text('[storage]\ndata_dir = "data"\n[targets]\nregistry = "lists/r.toml"\n'
                    '[alerts]\nwebhook_secret_file = "hook.secret"\n')
    monkeypatch.chdir(tmp_path)
    settings = load_settings(path, environ={})
    assert settings.storage.data_dir == str(config_dir / "data")
    assert settings.targets.registry == str(config_dir / "lists" / "r.toml")
    assert settings.alerts.webhook_secret == "s3cret"


def test_a_taken_metrics_port_stops_the_service_with_one_line(tmp_path: Path) -> None:
    import socket

    from click.testing import CliRunner

    from monitor.cli import cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = tmp_path / "blockmon.toml"
        config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
                          f'[alerts]\nenabled = true\nmetrics_listen = "127.0.0.1:{port}"\n')
        result = CliRunner().invoke(cli, ["--config", str(config), "run"], obj={})
    assert result.exit_code == 1
    assert f"[alerts] metrics_listen 127.0.0.1:{port}: cannot listen" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("Error: ")
