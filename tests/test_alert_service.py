"""The alert job wired into `blockmon run`: a confirmed block reaches the webhook by itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

from monitor.settings import load_settings
from tests.fixtures.alerts import WebhookReceiver


async def test_the_run_service_sends_a_confirmed_block_once(
        tmp_path: Path, webhook_receiver: WebhookReceiver) -> None:
    from monitor.service.compose import run_service
    from monitor.service.plan import ServicePlan
    from monitor.service.runner import RunnerConfig
    from monitor.service.scheduler import ListSchedule
    from monitor.service.upkeep import attach_alerts
    from monitor.signals import ShutdownRequest
    from tests.fixtures.runner import ScriptedProbe, make_target_list

    config = tmp_path / "blockmon.toml"
    config.write_text(
        f'[storage]\ndata_dir = "{tmp_path / "data"}"\n'
        "[alerts]\nenabled = true\n"
        f'webhook_url = "{webhook_receiver.url}"\nwebhook_secret = "{webhook_receiver.secret}"\n'
        # The periodic pass is slow on purpose: the transition hook must wake the job.
        "check_interval_seconds = 3600\n", encoding="utf-8")
    settings = load_settings(config, environ={})
    target_list = make_target_list("news", {"a.example": 1, "b.example": 1,
                                            "control-x.example": 1})
    probe = ScriptedProbe({"https://a.example/0": ["ok", "dns.nxdomain"]})
    shutdown = ShutdownRequest()
    rounds = []

    def after_round(result: object) -> None:
        rounds.append(result)
        if len(rounds) >= 4 and webhook_receiver.received:
            shutdown.trigger("test")

    plan = ServicePlan(
        settings=settings, target_lists=[target_list],
        runner_config=RunnerConfig(confirm_retests=2, confirm_delay_seconds=0.0),
        schedules={"news": ListSchedule(interval_seconds=0.3)}, measure=probe,
        on_round=[after_round], on_service=[attach_alerts(settings)])
    assert await asyncio.wait_for(run_service(plan, shutdown=shutdown), timeout=60) == 0
    [message] = webhook_receiver.received
    body = message["body"]
    assert body["kind"] == "block_confirmed"
    assert body["target"]["id"] == "a"
    assert [(w["url"], w["method"]) for w in body["where"]] == [
        ("https://a.example/0", "dns.nxdomain")]
