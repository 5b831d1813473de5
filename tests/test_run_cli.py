"""`blockmon run`: errors that stop a round before it starts, and the one-shot round's output."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.service.plan import schedule_for
from monitor.settings import load_settings
from tests.fixtures.runner import write_lab_config, write_lab_registry


def invoke(config: Path, *arguments: str):
    return CliRunner().invoke(cli, ["--config", str(config), "run", *arguments], obj={})


def write_config(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "blockmon.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path / "data"}"\n{text}')
    return config


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[schedule]\ninterval_minutes = 0\n", "[schedule] interval_minutes: must be from 1 to 525600"),
        ("[probe]\nconcurrncy = 4\n", "[probe] unknown key 'concurrncy'"),
        ("[probe]\nresolvers = [\"dns.example\"]\n", "[probe] resolvers: 'dns.example' is not an IP"),
    ],
)
def test_bad_settings_stop_the_round_with_one_line_naming_the_key(tmp_path, toml, expected):
    config = write_config(tmp_path, toml)
    result = invoke(config, "--once")
    assert result.exit_code == 1
    assert expected in result.stderr
    assert str(config) in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()


def test_unknown_list_is_named(tmp_path):
    result = invoke(write_config(tmp_path, ""), "--once", "--list", "nosuchlist")
    assert result.exit_code == 1
    assert "list 'nosuchlist'" in result.stderr
    assert "no target list named 'nosuchlist'" in result.stderr


def test_a_file_that_is_not_a_database_is_named(tmp_path):
    not_a_database = tmp_path / "data" / "blockmon.db"
    not_a_database.parent.mkdir()
    not_a_database.write_bytes(b"this is a text file, not SQLite" * 100)
    result = invoke(write_config(tmp_path, ""), "--once")
    assert result.exit_code == 1
    assert f"database sqlite:///{not_a_database}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_malformed_asn_database_stops_the_start_naming_file_and_line(tmp_path):
    database = tmp_path / "ip2asn.tsv"
    database.write_text("1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\nnot a range line\n")
    result = invoke(write_config(tmp_path, f'[probe]\nasn_database = "{database}"\n'), "--once")
    assert result.exit_code == 1
    assert "[probe] asn_database" in result.stderr
    assert f"{database}:2" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_list_without_urls_is_refused(tmp_path):
    registry = tmp_path / "empty.toml"
    registry.write_text('[list]\nname = "empty"\n\n[[target]]\nid = "nothing"\nname = "Nothing"\n'
                        'category_code = "NEWS"\nnotes = "closed in 2012"\n')
    config = write_config(tmp_path, f'[targets]\nregistry = "{registry}"\nlists = ["empty"]\n')
    result = invoke(config, "--once")
    assert result.exit_code == 1, result.output
    assert "no targets to measure in list(s) empty" in result.stderr


def test_schedule_settings_become_list_schedules(tmp_path):
    config = write_config(tmp_path, (
        "[schedule]\ninterval_minutes = 30\njitter_seconds = 5\nwatch_windows = [\n"
        '  {start = "2026-12-01T00:00:00Z", end = "2026-12-02T00:00:00Z", interval_minutes = 5},\n'
        '  {start = "2026-12-05T00:00:00Z", end = "2026-12-06T00:00:00Z", interval_minutes = 1,'
        ' lists = ["global"]},\n]\n'))
    settings = load_settings(config)
    briefing = schedule_for(settings, "briefing")
    assert briefing.interval_seconds == 1800 and briefing.jitter_seconds == 5
    assert [window.interval_seconds for window in briefing.watch_windows] == [300]
    assert [window.interval_seconds for window in schedule_for(settings, "global").watch_windows] \
        == [300, 60]


def test_a_watch_window_naming_an_unmeasured_list_is_refused(tmp_path):
    config = write_config(tmp_path, (
        "[schedule]\nwatch_windows = [\n"
        '  {start = "2026-12-01T00:00:00Z", end = "2026-12-02T00:00:00Z", interval_minutes = 5,'
        ' lists = ["briefng"]},\n]\n'))
    result = invoke(config, "--once")
    assert result.exit_code == 1
    assert "[schedule] watch_windows[1] lists: 'briefng' not among the lists measured (briefing)" \
        in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def integrity(database: Path) -> str:
    with sqlite3.connect(database) as connection:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.mark.slow
def test_sigterm_mid_round_stops_cleanly_without_half_written_rows(tmp_path, lab_info,
                                                                  helper_url):
    from tests.test_kill9 import make_slow_round, query, start_blockmon, wait_for_saved

    config, url_count = make_slow_round(tmp_path, lab_info, helper_url)
    database = tmp_path / "data" / "blockmon.db"
    service = start_blockmon(config, "--log-level", "info")
    wait_for_saved(service, 2)
    service.send_signal(signal.SIGTERM)
    service.wait(timeout=60)

    assert service.returncode == 0
    assert integrity(database) == "ok"
    assert query(database, "SELECT status FROM runs WHERE finished_at IS NOT NULL") == [
        ("interrupted",)]
    measurements = query(database, "SELECT uid, url, measured_at, json FROM measurements")
    assert 2 <= len(measurements) < url_count
    states = {url: (last_measured_at, last_uid) for url, last_measured_at, last_uid in query(
        database, "SELECT url, last_measured_at, last_uid FROM target_state")}
    for uid, url, measured_at, text in measurements:
        assert json.loads(text)["measurement_uid"] == uid
        # Each stored measurement got its state decided too: the pair is never left half-done.
        assert states[url][0] >= measured_at
    assert {last_uid for _, last_uid in states.values()} <= {row[0] for row in measurements}


@pytest.mark.slow
def test_once_measures_confirms_and_prints_the_closing_table(tmp_path, lab_info, helper_url):
    registry = write_lab_registry(tmp_path / "registry.toml", "lab", {
        "honest": ["https://ok.lab.test/", "https://ok.lab.test/about"],
        "censored": ["https://nxdomain.lab.test/"],
    })
    config = write_lab_config(tmp_path, lab_info, registry, "lab", helper_url=helper_url,
                              extra="[schedule]\nconfirm_retests = 1\nconfirm_delay_seconds = 0\n")
    result = invoke(config, "--once")

    assert result.exit_code == 0, result.output
    progress = result.stderr.strip().splitlines()
    # Finding 7 (issue 15): 3 URLs and one confirmation re-test, counted apart.
    assert progress[-1] == "3/3 URLs measured, 1 anomalous; re-tests 1/1"
    table = result.stdout.splitlines()
    assert table[0].split() == ["target", "urls", "anomalous", "state", "methods", "failures"]
    assert table[2].split() == ["censored", "1", "1", "blocked", "dns.nxdomain",
                                "dns_nxdomain_error"]
    assert table[3].split() == ["honest", "2", "0", "accessible", "-", "-"]
    assert table[4] == ("list lab: 3 URLs of 2 targets; 1 URL anomalous, 1 URL confirmed "
                        "blocked (1 target), 0 awaiting re-tests; round ok")


async def test_service_runs_rounds_confirms_through_the_scheduler_and_stops(tmp_path):
    from monitor.service.compose import run_service
    from monitor.service.plan import ServicePlan
    from monitor.service.runner import RunnerConfig
    from monitor.service.scheduler import ListSchedule
    from monitor.signals import ShutdownRequest
    from tests.fixtures.runner import ScriptedProbe, make_target_list

    settings = load_settings(write_config(tmp_path, ""), environ={})
    target_list = make_target_list("news", {"a.example": 1, "b.example": 1})
    probe = ScriptedProbe({"https://a.example/0": ["ok", "dns.nxdomain"]})
    shutdown = ShutdownRequest()
    rounds, periodic_runs, transitions = [], [], []

    def after_round(result) -> None:
        rounds.append(result)
        if len(rounds) == 3:
            shutdown.trigger("test")

    async def periodic() -> None:
        periodic_runs.append(1)

    def extend(runner, scheduler) -> None:
        runner.on_transition.append(lambda event: transitions.append(event.transition))
        scheduler.add_periodic("report", periodic, seconds=0.1)

    plan = ServicePlan(
        settings=settings, target_lists=[target_list],
        runner_config=RunnerConfig(confirm_retests=2, confirm_delay_seconds=0.0),
        schedules={"news": ListSchedule(interval_seconds=0.5)}, measure=probe,
        on_round=[after_round], on_service=[extend])
    assert await asyncio.wait_for(run_service(plan, shutdown=shutdown), timeout=60) == 0

    assert [result.status for result in rounds] == ["ok", "ok", "ok"]
    assert periodic_runs
    changes = [(t["from_state"], t["to_state"]) for t in transitions
               if t["url"] == "https://a.example/0"]
    # Round 2 saw the anomaly; the scheduled re-tests (confirmations 1 and 2) confirmed it.
    assert changes == [(None, "accessible"), ("accessible", "anomaly"), ("anomaly", "blocked")]
    database = tmp_path / "data" / "blockmon.db"
    with sqlite3.connect(database) as connection:
        confirmations = connection.execute(
            "SELECT confirmation FROM measurements WHERE url = 'https://a.example/0' "
            "ORDER BY measured_at, confirmation").fetchall()
        runs = connection.execute("SELECT status FROM runs").fetchall()
    assert (1,) in confirmations and (2,) in confirmations
    assert runs == [("ok",)] * 3


def test_progress_redraws_one_line_on_a_terminal_and_prints_lines_otherwise():
    import io

    from monitor.service.progress import ProgressReporter, UrlOutcome

    def outcome(blocking, url="https://a.example/", confirmation=0):
        return UrlOutcome("t", url, "uid", blocking, None, None, None, None,
                          confirmation=confirmation)

    terminal, pipe = io.StringIO(), io.StringIO()
    for stream, is_tty in ((terminal, True), (pipe, False)):
        reporter = ProgressReporter(stream, 2, is_tty=is_tty)
        reporter.record(outcome("dns"))
        reporter.record(outcome(False, "https://b.example/"))
        reporter.close()
    assert terminal.getvalue() == (
        "\r[###############---------------] 1/2 URLs measured, 1 anomalous"
        "\r[##############################] 2/2 URLs measured, 1 anomalous\n")
    assert pipe.getvalue() == ("1/2 URLs measured, 1 anomalous\n"
                               "2/2 URLs measured, 1 anomalous\n")


def test_progress_counts_urls_and_retests_apart():
    # Finding 7 (issue 15): 31 URLs and 6 re-tests read "37/37 measured, 9 blocked" before.
    import io

    from monitor.service.progress import ProgressReporter, UrlOutcome, render_round_table

    pipe = io.StringIO()
    reporter = ProgressReporter(pipe, 3, is_tty=False)
    outcomes = [UrlOutcome("a", "https://a/", "u1", False, True, None, None, "accessible"),
                UrlOutcome("z", "https://z/", "u2", "dns", False, "dns.nxdomain", None, "anomaly"),
                UrlOutcome("m", "https://m/", "u3", False, True, None, None, "accessible")]
    for item in outcomes:
        reporter.record(item)
    reporter.add_total(2)
    for confirmation in (1, 2):
        retest = UrlOutcome("z", "https://z/", f"r{confirmation}", "dns", False, "dns.nxdomain",
                            None, "blocked" if confirmation == 2 else "anomaly",
                            confirmation=confirmation)
        outcomes.append(retest)
        reporter.record(retest)
    assert pipe.getvalue().splitlines()[-1] == "3/3 URLs measured, 1 anomalous; re-tests 2/2"
    # Finding 6: the blocked target heads the table, not its alphabetical place.
    rows = render_round_table(outcomes).splitlines()
    assert [row.split()[0] for row in rows[2:]] == ["z", "a", "m"]


async def test_service_uploads_the_spool_to_the_collector(tmp_path):
    from aiohttp import web

    from monitor.commands.demo import serve_on_loopback
    from monitor.service.compose import run_service
    from monitor.service.plan import ServicePlan
    from monitor.service.runner import RunnerConfig
    from monitor.service.scheduler import ListSchedule
    from monitor.service.upkeep import attach_uploads
    from monitor.signals import ShutdownRequest
    from tests.fixtures.runner import ScriptedProbe, make_target_list

    received: list[str] = []
    shutdown = ShutdownRequest()

    async def collect(request: web.Request) -> web.Response:
        assert request.headers["Authorization"] == "Bearer probe-token"
        batch = (await request.json())["measurements"]
        received.extend(measurement["measurement_uid"] for measurement in batch)
        if len(received) >= 2:
            shutdown.trigger("test")
        return web.json_response({"stored": len(batch)})

    app = web.Application()
    app.router.add_post("/api/v1/measurements", collect)
    url, app_runner = await serve_on_loopback(app)
    try:
        settings = load_settings(write_config(tmp_path, (
            f'[collector]\nurl = "{url}"\ntoken = "probe-token"\nupload_interval_seconds = 1\n')),
            environ={})
        plan = ServicePlan(
            settings=settings, target_lists=[make_target_list("news", {"a.example": 2})],
            runner_config=RunnerConfig(), measure=ScriptedProbe(),
            schedules={"news": ListSchedule(interval_seconds=3600)},
            on_service=[attach_uploads(settings)])
        assert await asyncio.wait_for(run_service(plan, shutdown=shutdown), timeout=60) == 0
    finally:
        await app_runner.cleanup()

    with sqlite3.connect(tmp_path / "data" / "blockmon.db") as connection:
        stored = {uid for (uid,) in connection.execute("SELECT uid FROM measurements")}
        spooled = connection.execute("SELECT count(*) FROM spool").fetchone()[0]
    assert set(received) == stored and len(stored) == 2
    assert spooled == 0
