"""The runner: limits, saving as results complete, state decisions, confirmations, hooks, stop."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from monitor.service.runner import Runner, RunnerConfig, StoreRecorder
from probes.options import ProbeOptions
from tests.fixtures.runner import ScriptedProbe, make_target_list

OPTIONS = ProbeOptions()


def make_runner(writer_store, target_list, probe, **config) -> Runner:
    store, call = writer_store
    recorder = StoreRecorder(store, call, vantage_id="local")
    settings = None  # the runner only reads its RunnerConfig when one is given
    runner = Runner(settings, recorder, target_list, OPTIONS,
                    config=RunnerConfig(**{"confirm_delay_seconds": 0.0, **config}), measure=probe)
    runner.keep_retest_outcomes = True
    return runner


def rows(store_path, sql, *params):
    with sqlite3.connect(store_path) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute(sql, params)]


async def test_round_saves_every_url_and_its_state(writer_store, store_path):
    target_list = make_target_list("news", {"a.example": 2, "b.example": 1})
    runner = make_runner(writer_store, target_list, ScriptedProbe())
    result = await runner.run_round("news")

    assert result.status == "ok"
    assert sorted(outcome.url for outcome in result.outcomes) == [
        "https://a.example/0", "https://a.example/1", "https://b.example/0"]
    measurements = rows(store_path, "SELECT url, run_id, target_id FROM measurements ORDER BY url")
    assert [(m["url"], m["target_id"]) for m in measurements] == [
        ("https://a.example/0", "a"), ("https://a.example/1", "a"), ("https://b.example/0", "b")]
    assert {m["run_id"] for m in measurements} == {result.run_id}
    states = rows(store_path, "SELECT url, state FROM target_state ORDER BY url")
    assert [state["state"] for state in states] == ["accessible"] * 3
    (run,) = rows(store_path, "SELECT status, measured FROM runs")
    assert run == {"status": "ok", "measured": 3}


async def test_concurrency_and_per_host_limits_hold(writer_store):
    target_list = make_target_list("news", {"a.example": 6, "b.example": 6, "c.example": 6})
    probe = ScriptedProbe(delay=0.05)
    runner = make_runner(writer_store, target_list, probe, concurrency=4, per_host_limit=2)
    await runner.run_round("news")

    assert len(probe.calls) == 18
    assert probe.most_at_once == 4
    assert max(probe.most_per_host.values()) == 2


async def test_anomaly_confirmed_by_retests_becomes_blocked(writer_store, store_path):
    url = "https://a.example/0"
    target_list = make_target_list("news", {"a.example": 1, "b.example": 1})
    probe = ScriptedProbe({url: ["dns.nxdomain"]})
    runner = make_runner(writer_store, target_list, probe, confirm_retests=2)
    transitions = []
    runner.on_transition.append(lambda event: transitions.append(event.transition))

    result = await runner.run_round("news")
    retests = await runner.wait_for_confirmations()

    assert [outcome.state for outcome in result.outcomes if outcome.url == url] == ["anomaly"]
    assert [(outcome.confirmation, outcome.state) for outcome in retests] == [
        (1, "anomaly"), (2, "blocked")]
    assert probe.calls.count(url) == 3
    assert probe.calls.count("https://b.example/0") == 1
    (state,) = rows(store_path, "SELECT state, method, streak FROM target_state WHERE url = ?", url)
    assert state == {"state": "blocked", "method": "dns.nxdomain", "streak": 3}
    confirmations = rows(store_path, "SELECT confirmation FROM measurements WHERE url = ? "
                         "ORDER BY confirmation", url)
    assert [row["confirmation"] for row in confirmations] == [0, 1, 2]
    assert [(t["from_state"], t["to_state"]) for t in transitions if t["url"] == url] == [
        (None, "anomaly"), ("anomaly", "blocked")]


async def test_anomaly_that_does_not_repeat_is_cleared(writer_store, store_path):
    url = "https://a.example/0"
    probe = ScriptedProbe({url: ["dns.nxdomain", "ok"]})
    runner = make_runner(writer_store, make_target_list("news", {"a.example": 1}), probe)

    await runner.run_round("news")
    retests = await runner.wait_for_confirmations()

    assert [(outcome.confirmation, outcome.state) for outcome in retests] == [(1, "accessible")]
    assert probe.calls.count(url) == 2
    (state,) = rows(store_path, "SELECT state FROM target_state WHERE url = ?", url)
    assert state["state"] == "accessible"


async def test_hooks_see_each_stored_measurement_and_a_broken_hook_is_contained(writer_store):
    runner = make_runner(writer_store, make_target_list("news", {"a.example": 3}),
                         ScriptedProbe())
    seen = []

    async def record(event) -> None:
        seen.append(event.measurement["measurement_uid"])

    def broken(event) -> None:
        raise RuntimeError("metrics exporter down")

    runner.on_measurement.extend([broken, record])
    result = await runner.run_round("news")
    assert sorted(seen) == sorted(outcome.measurement_uid for outcome in result.outcomes)
    assert len(seen) == 3


async def test_a_probe_that_raises_is_reported_and_the_round_goes_on(writer_store, store_path):
    probe = ScriptedProbe()

    async def sometimes_broken(url, options, **keywords):
        if url.endswith("/1"):
            raise KeyError("test_keys")
        return await probe(url, options, **keywords)

    runner = make_runner(writer_store, make_target_list("news", {"a.example": 3}),
                         sometimes_broken)
    result = await runner.run_round("news")
    assert len(result.outcomes) == 2
    assert result.errors == ["https://a.example/1: KeyError: 'test_keys'"]
    (run,) = rows(store_path, "SELECT status, counts FROM runs")
    assert run["status"] == "ok" and '"errors": 1' in run["counts"]


async def test_a_measurement_the_store_refuses_is_reported_not_lost_silently(
        writer_store, store_path, caplog):
    probe = ScriptedProbe()

    async def forgets_start_time(url, options, **keywords):
        measurement = await probe(url, options, **keywords)
        if url.endswith("/1"):
            del measurement["measurement_start_time"]
        return measurement

    runner = make_runner(writer_store, make_target_list("news", {"a.example": 2}),
                         forgets_start_time)
    result = await runner.run_round("news")
    assert len(result.outcomes) == 1
    assert len(result.errors) == 1
    assert result.errors[0].startswith("https://a.example/1: not stored: MeasurementFormatError")
    assert "storing the measurement of https://a.example/1 failed" in caplog.text
    (run,) = rows(store_path, "SELECT counts FROM runs")
    assert '"errors": 1' in run["counts"]


async def test_a_url_the_probe_refuses_is_one_error_line(writer_store, store_path):
    from probes.errors import InvalidInput

    async def refuses(url, options, **keywords):
        raise InvalidInput(f"URL {url!r}: scheme must be http or https")

    runner = make_runner(writer_store, make_target_list("news", {"a.example": 1}), refuses)
    result = await runner.run_round("news")
    assert result.errors == ["URL 'https://a.example/0': scheme must be http or https"]
    assert rows(store_path, "SELECT * FROM measurements") == []


async def test_stop_mid_round_stores_finished_work_and_cancels_the_rest(writer_store, store_path):
    fast_urls = {f"https://a.example/{number}" for number in range(2)}
    probe = ScriptedProbe()

    async def some_hang(url, options, **keywords):
        if url not in fast_urls:
            await asyncio.sleep(3600)
        return await probe(url, options, **keywords)

    target_list = make_target_list("news", {"a.example": 2, "b.example": 2, "c.example": 2})
    runner = make_runner(writer_store, target_list, some_hang, concurrency=3)
    round_task = asyncio.ensure_future(runner.run_round("news"))
    while len(probe.calls) < 2:
        await asyncio.sleep(0.01)
    runner.stop()
    cancelled = await runner.drain(0.1)
    result = await round_task

    assert cancelled >= 3  # the hanging URLs (and any still queued for a slot)
    assert result.status == "interrupted"
    saved = rows(store_path, "SELECT url FROM measurements")
    assert {row["url"] for row in saved} == fast_urls
    assert len(rows(store_path, "SELECT * FROM target_state")) == 2
    (run,) = rows(store_path, "SELECT status, measured FROM runs")
    assert run == {"status": "interrupted", "measured": 2}
    assert rows(store_path, "PRAGMA integrity_check") == [{"integrity_check": "ok"}]


@pytest.mark.slow
async def test_runner_against_the_lab_confirms_real_blocks(lab_info, helper_url, writer_store,
                                                           store_path):
    from monitor.settings import load_settings
    from targets.registry import load_registry
    from tests.fixtures.runner import write_lab_config, write_lab_registry

    registry = write_lab_registry(store_path.parent.parent / "registry.toml", "lab", {
        "honest": ["https://ok.lab.test/"],
        "nxdomain": ["https://nxdomain.lab.test/"],
        "blockpage": ["http://http-blockpage.lab.test/"],
    })
    config = write_lab_config(store_path.parent.parent, lab_info, registry, "lab",
                              helper_url=helper_url)
    settings = load_settings(config, environ={})
    store, call = writer_store
    runner = Runner(settings, StoreRecorder(store, call, vantage_id="local"),
                    load_registry(registry), settings.probe.to_probe_options(),
                    config=RunnerConfig(confirm_retests=1, confirm_delay_seconds=0.0))
    result = await runner.run_round("lab")
    await runner.wait_for_confirmations()

    assert result.status == "ok" and not result.errors
    states = {row["url"]: row for row in rows(
        store_path, "SELECT url, state, method, target_id FROM target_state")}
    assert states["https://ok.lab.test/"]["state"] == "accessible"
    assert states["https://nxdomain.lab.test/"]["state"] == "blocked"
    assert states["https://nxdomain.lab.test/"]["method"] == "dns.nxdomain"
    assert states["http://http-blockpage.lab.test/"]["state"] == "blocked"
    assert states["http://http-blockpage.lab.test/"]["method"] == "http.blockpage"
    stored = rows(store_path, "SELECT url, confirmation, blocking, accessible FROM measurements "
                  "ORDER BY url, confirmation")
    assert [(row["url"], row["confirmation"]) for row in stored] == [
        ("http://http-blockpage.lab.test/", 0), ("http://http-blockpage.lab.test/", 1),
        ("https://nxdomain.lab.test/", 0), ("https://nxdomain.lab.test/", 1),
        ("https://ok.lab.test/", 0)]
    assert {(row["blocking"], row["accessible"]) for row in stored
            if row["url"] == "https://ok.lab.test/"} == {("false", 1)}


async def test_a_retest_that_asks_for_the_next_keeps_it_pending(writer_store):
    url = "https://a.example/0"
    runner = make_runner(writer_store, make_target_list("news", {"a.example": 1}),
                         ScriptedProbe({url: ["dns.nxdomain"]}), confirm_retests=2)
    scheduled = []
    runner.schedule_retest = lambda key, job, at: scheduled.append((key, job, at))

    await runner.run_round("news")
    assert [key for key, _, _ in scheduled] == [f"local|{url}"]
    assert runner.has_pending_retests

    await scheduled[0][1]()  # the scheduler runs re-test 1; still anomalous
    assert len(scheduled) == 2 and runner.has_pending_retests
    await scheduled[1][1]()  # re-test 2 confirms the block; no third is asked for
    assert len(scheduled) == 2 and not runner.has_pending_retests


async def test_a_round_measures_with_the_collector_tuned_and_gives_it_back(writer_store):
    import gc

    from probes import garbage

    thresholds: list[int] = []

    class RecordingProbe(ScriptedProbe):
        async def __call__(self, url, options, **keywords):
            thresholds.append(gc.get_threshold()[0])
            return await super().__call__(url, options, **keywords)

    before = gc.get_threshold()
    runner = make_runner(writer_store, make_target_list("news", {"a.example": 2}), RecordingProbe())
    result = await runner.run_round("news")
    assert result.status == "ok"
    assert thresholds == [garbage.YOUNG_THRESHOLD] * 2
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
