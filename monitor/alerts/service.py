"""The alert job (rules, then deliveries) built from [alerts]; the collector's loop; /metrics."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from monitor.alerts.channels.base import Channel
from monitor.alerts.channels.email import EmailChannel
from monitor.alerts.channels.slack import SlackChannel
from monitor.alerts.channels.webhook import WebhookChannel
from monitor.alerts.delivery import DeliveryPolicy, DeliveryReport, InStore, deliver_due
from monitor.alerts.evaluate import EvaluationConfig, evaluate_alerts
from monitor.alerts.metrics import MetricsSnapshot, add_metrics_route, read_snapshot
from monitor.alerts.rules import RuleConfig
from monitor.settings import AlertsSettings, Settings
from monitor.store import Store
from probes.endpoints import split_host_port
from targets.registry import load_registry

log = logging.getLogger(__name__)


def channels_from_settings(alerts: AlertsSettings) -> dict[str, Channel]:
    """The configured channels by name: webhook, slack, email (each only when set)."""
    channels: dict[str, Channel] = {}
    if alerts.webhook_url:
        channels["webhook"] = WebhookChannel(alerts.webhook_url, secret=alerts.webhook_secret,
                                             timeout=alerts.send_timeout_seconds)
    if alerts.slack_url:
        channels["slack"] = SlackChannel(alerts.slack_url, timeout=alerts.send_timeout_seconds)
    if alerts.smtp_host:
        channels["email"] = EmailChannel(
            host=alerts.smtp_host, port=alerts.smtp_port, sender=alerts.email_from,
            recipients=alerts.email_to, starttls=alerts.smtp_starttls,
            username=alerts.smtp_username, password=alerts.smtp_password,
            timeout=alerts.send_timeout_seconds, ca_file=alerts.smtp_ca_file)
    return channels


def load_registry_facts(settings: Settings) -> tuple[frozenset[str], dict[str, dict[str, Any]]]:
    """The registry's control target ids, and each target's name and briefing claim. Empty
    when the registry cannot be read (a collector may run without it): controls are then
    recognised by the `control-` id prefix (rules.UrlStatus)."""
    try:
        registry = load_registry(settings.targets.registry_path)
    except Exception as error:  # a missing or broken registry: fall back, and say so
        log.warning("alerts: registry unreadable (%s); controls are targets named control-*",
                    error)
        return frozenset(), {}
    controls = frozenset(target.id for target in registry.targets if target.control)
    known = {target.id: {"id": target.id, "name": target.name,
                         "briefing": asdict(target.briefing) if target.briefing else None}
             for target in registry.targets}
    return controls, known


def evaluation_config(settings: Settings, channels: dict[str, Channel],
                      control_ids: frozenset[str],
                      known_targets: dict[str, dict[str, Any]] | None = None,
                      ) -> EvaluationConfig:
    return EvaluationConfig(
        rules=RuleConfig.from_settings(settings.alerts),
        kinds=frozenset(settings.alerts.kinds),
        channels=tuple(sorted(channels)),
        control_ids=control_ids,
        dashboard_url=settings.alerts.dashboard_url,
        round_interval_seconds=settings.schedule.interval_minutes * 60.0,
        known_targets=known_targets or {},
        ooni_alerts=settings.ooni.alerts,
        lists=frozenset(settings.alerts.lists))


class AlertService:
    """One alert job: a pass of the rules, then a pass of deliveries; never two at once."""

    def __init__(self, in_store: InStore, config: EvaluationConfig,
                 channels: dict[str, Channel], policy: DeliveryPolicy, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.in_store = in_store
        self.config = config
        self.channels = channels
        self.policy = policy
        self.clock = clock
        self._lock = asyncio.Lock()
        self._woken: asyncio.Task[Any] | None = None
        self._wanted_again = False
        self.new_alert_ids: list[int] = []

    @classmethod
    def from_settings(cls, settings: Settings, in_store: InStore, *,
                      channels: dict[str, Channel] | None = None,
                      control_ids: frozenset[str] | None = None) -> AlertService:
        chosen = channels_from_settings(settings.alerts) if channels is None else channels
        controls, known = load_registry_facts(settings)
        if control_ids is not None:
            controls = control_ids
        return cls(in_store, evaluation_config(settings, chosen, controls, known), chosen,
                   DeliveryPolicy.from_settings(settings.alerts))

    async def tick(self) -> DeliveryReport:
        async with self._lock:
            now = self.clock()
            created = await self.in_store(lambda store: evaluate_alerts(store, self.config, now))
            if created:
                log.info("alerts recorded: %s", created)
                self.new_alert_ids.extend(created)
            return await deliver_due(self.in_store, self.channels, self.policy,
                                     clock=self.clock)

    def wake(self, _event: Any = None) -> None:
        """A transition hook: run a pass now rather than at the next period (latency).
        Woken while a pass runs, one more pass follows it: that pass may have read the
        states before this transition was stored."""
        self._wanted_again = True
        if self._woken is None or self._woken.done():
            self._woken = asyncio.ensure_future(self._passes_while_wanted())

    async def _passes_while_wanted(self) -> None:
        while self._wanted_again:
            self._wanted_again = False
            await self.run_pass()

    async def run_pass(self) -> None:
        try:
            await self.tick()
        except Exception:  # the periodic job will try again; measuring must go on
            log.exception("alert pass failed")

    async def wait_idle(self) -> None:
        if self._woken is not None:
            await asyncio.gather(self._woken, return_exceptions=True)


# The collector's alert service, for a test or an operator hook to reach.
ALERT_SERVICE_KEY = web.AppKey("alert_service", AlertService)


async def serve_metrics(listen: str, fetch: Callable[[], Awaitable[MetricsSnapshot]]
                        ) -> web.AppRunner:
    """Our own small /metrics listener (for `blockmon run`); returns the aiohttp runner."""
    host, port = split_host_port(listen)
    app = web.Application()
    add_metrics_route(app, fetch)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def attach_to_collector(app: web.Application, settings: Settings | None,
                        database: Any) -> None:
    """The collector: /metrics always; with [alerts] enabled, the alert job runs every
    check_interval_seconds while the app is up (uploads always go through the state machine)."""

    async def in_store(work: Callable[[Store], Any]) -> Any:
        return await database.run(lambda store, _registry: work(store))

    async def fetch() -> MetricsSnapshot:
        snapshot: MetricsSnapshot = await in_store(read_snapshot)
        return snapshot

    add_metrics_route(app, fetch)
    if settings is None or not settings.alerts.enabled:
        return
    service = AlertService.from_settings(settings, in_store)
    app[ALERT_SERVICE_KEY] = service

    async def alert_loop(_app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await service.run_pass()
                await asyncio.sleep(settings.alerts.check_interval_seconds)

        task = asyncio.ensure_future(loop())
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    app.cleanup_ctx.append(alert_loop)
