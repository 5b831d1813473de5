"""Settings: defaults, file, environment, secrets, validation errors, generated docs."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.settings import (
    SettingsError,
    load_settings,
    render_default_config,
    render_settings_table,
    setting_specs,
)
from tests.conftest import PROJECT_ROOT


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "blockmon.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./blockmon.toml here
    settings = load_settings(None, environ={})
    assert settings.source is None
    assert settings.probe.concurrency == 20
    assert settings.probe.per_host_limit == 2
    assert settings.storage.database_url == "sqlite:///blockmon-data/blockmon.db"
    assert settings.targets.lists == ("briefing",)
    assert settings.targets.registry_path.name == "registry.toml"
    assert settings.schedule.confirmations_needed == 3


def test_the_default_file_in_the_working_directory_is_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, '[probe]\nvantage_id = "kz-almaty-1"\n')
    monkeypatch.chdir(tmp_path)
    assert load_settings(None, environ={}).probe.vantage_id == "kz-almaty-1"


def test_file_values_and_environment_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, """
[probe]
vantage_id = "kz-almaty-1"
cc = "KZ"
asn = "AS9198"
resolvers = ["127.0.0.53", "127.0.0.1:5353"]
dns_timeout = 2
[storage]
data_dir = "/var/lib/blockmon"
retention_days = 400
[schedule]
watch_windows = [{start = "2026-12-01T00:00:00Z", end = "2026-12-03", interval_minutes = 10, lists = ["briefing"]}]
""")
    settings = load_settings(path, environ={
        "BLOCKMON_PROBE_ASN": "AS48503",
        "BLOCKMON_PROBE_LAB_PUBLIC_RANGES": "127.0.0.0/8, ::1/128",
        "BLOCKMON_SCHEDULE_CRON": "*/5 * * * *",
        "BLOCKMON_REPORTS_WEEKLY": "no",
        "BLOCKMON_STORAGE_DATABASE": "postgresql://root@127.0.0.1/test",
    })
    assert settings.source == str(path)
    assert (settings.probe.vantage_id, settings.probe.cc, settings.probe.asn) == (
        "kz-almaty-1", "KZ", "AS48503")
    assert settings.probe.dns_timeout == 2.0 and isinstance(settings.probe.dns_timeout, float)
    assert settings.probe.lab_public_ranges == ("127.0.0.0/8", "::1/128")
    assert settings.storage.retention_days == 400
    assert settings.storage.database_url == "postgresql://root@127.0.0.1/test"
    assert settings.schedule.cron == "*/5 * * * *"
    assert settings.reports.weekly is False
    [window] = settings.schedule.watch_windows
    assert window.start.isoformat() == "2026-12-01T00:00:00+00:00"
    assert window.end.isoformat() == "2026-12-03T00:00:00+00:00"
    assert (window.interval_minutes, window.lists) == (10, ("briefing",))


def test_probe_options_follow_the_probe_section(tmp_path: Path) -> None:
    path = write(tmp_path, '[probe]\nvantage_id = "v1"\ncc = "KZ"\nhelper_url = '
                           '"http://127.0.0.1:8080/"\nbody_limit = 1000\nca_file = "/ca.pem"\n')
    options = load_settings(path, environ={}).probe.to_probe_options()
    assert options.identity.vantage_id == "v1"
    assert options.identity.probe_cc == "KZ"
    assert options.helper_url == "http://127.0.0.1:8080/"
    assert options.body_limit == 1000
    assert options.ca_file == "/ca.pem"


def test_secrets_come_from_files(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-env-file\n")
    (tmp_path / "helper").write_text("from-toml-file\n")
    path = write(tmp_path, f'[probe]\nhelper_token_file = "{tmp_path / "helper"}"\n')
    settings = load_settings(path, environ={
        "BLOCKMON_COLLECTOR_TOKEN_FILE": str(tmp_path / "token")})
    assert settings.collector.token == "from-env-file"
    assert settings.probe.helper_token == "from-toml-file"
    with pytest.raises(SettingsError, match="BLOCKMON_COLLECTOR_TOKEN_FILE.*cannot read"):
        load_settings(path, environ={"BLOCKMON_COLLECTOR_TOKEN_FILE": str(tmp_path / "none")})


@pytest.mark.parametrize(("text", "environ", "message"), [
    ("[probe]\nconcurency = 3\n", {}, r"\[probe\] unknown key 'concurency'"),
    ("[prob]\n", {}, r"unknown section \[prob\]"),
    ('[probe]\nconcurrency = "many"\n', {}, r"\[probe\] concurrency: expected an integer"),
    ("[probe]\nconcurrency = 0\n", {}, r"\[probe\] concurrency: must be greater than 0"),
    ('[probe]\ncc = "kz"\n', {}, r"\[probe\] cc: must be two upper-case letters"),
    ('[probe]\nresolvers = ["dns.google"]\n', {}, r"\[probe\] resolvers: 'dns.google' is not"),
    ('[storage]\ndatabase = "mysql://x"\n', {}, r"\[storage\] database: must start with"),
    ('[schedule]\ncron = "hourly"\n', {}, r"\[schedule\] cron: must be a 5-field"),
    ('[schedule]\nwatch_windows = [{start = "2026-12-03", end = "2026-12-01", '
     'interval_minutes = 5}]\n', {}, r"watch_windows: window 1 ends before it starts"),
    ('[schedule]\nwatch_windows = [{start = "2026-12-01"}]\n', {},
     r"watch_windows: watch window lacks 'end'"),
    ("[reports]\nweekly = 1\n", {}, r"\[reports\] weekly: expected true or false"),
    ("[collector]\ntoken_file = 5\n", {}, r"\[collector\] token_file: expected the path"),
    ("probe = 3\n", {}, r"probe must be a \[section\] table"),
    ("[probe\n", {}, r"not valid TOML"),
    ("", {"BLOCKMON_PROBE_CONCURRENCY": "lots"},
     r"environment BLOCKMON_PROBE_CONCURRENCY: expected an integer"),
    ("", {"BLOCKMON_PROBE_ASN": "9198"}, r"environment BLOCKMON_PROBE_ASN: must look like AS"),
])
def test_bad_settings_name_the_key(tmp_path: Path, text: str, environ: dict[str, str],
                                   message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SettingsError, match=message) as caught:
        load_settings(path, environ=environ)
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"nowhere.toml: settings file not found"):
        load_settings(tmp_path / "nowhere.toml", environ={})


def test_settings_are_immutable(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, ""), environ={})
    with pytest.raises(AttributeError):
        settings.probe.concurrency = 5  # type: ignore[misc]


def test_the_default_config_loads_to_the_defaults(tmp_path: Path) -> None:
    text = render_default_config()
    tomllib.loads(text)
    loaded = load_settings(write(tmp_path, text), environ={})
    defaults = load_settings(write(tmp_path, ""), environ={})
    assert loaded.probe == defaults.probe
    assert loaded.schedule == defaults.schedule
    for spec in setting_specs():
        assert f"{spec.key} = " in text, f"blockmon init does not show {spec.section}.{spec.key}"


def test_every_setting_is_documented() -> None:
    docs = (PROJECT_ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    for spec in setting_specs():
        assert f"`{spec.env_var}`" in docs, f"docs/settings.md lacks {spec.section}.{spec.key}"
    assert render_settings_table() in docs, (
        "docs/settings.md is out of date: paste `python -m monitor.settings` into it")


def test_retention_cutoff(tmp_path: Path) -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    forever = load_settings(write(tmp_path, ""), environ={})
    assert forever.storage.retention_cutoff(now) is None
    year = load_settings(write(tmp_path, "[storage]\nretention_days = 365\n"), environ={})
    assert year.storage.retention_cutoff(now) == datetime(2025, 11, 25, 12, 0, tzinfo=UTC)
