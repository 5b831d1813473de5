"""`blockmon doctor`: checks everything a round needs to mean something, one line per check."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import aiohttp
import click
import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode

from monitor.schema import PROBE_DATABASE
from monitor.service.round_health import CLOCK_SKEW_LIMIT_SECONDS
from monitor.settings import Settings, SettingsError, load_settings
from monitor.store import open_store, sqlite_path
from monitor.store.ledger import applied_versions
from probes.control_protocol import ControlAnswerError, build_control_request, parse_control_answer
from probes.http import REQUEST_HEADERS, read_capped
from targets.model import Target

CONTROL_URLS_TRIED = 3


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report: a name, passed or not (None = skipped), what was found."""

    name: str
    ok: bool | None
    detail: str

    def line(self) -> str:
        mark = {True: "ok  ", False: "FAIL", None: "skip"}[self.ok]
        return f"{mark} {self.name}: {self.detail}"


def check_database(settings: Settings) -> Check:
    """Writable, and which migrations the next run will apply (SQLite read without writing)."""
    url = settings.storage.database_url
    path = sqlite_path(url)
    if path is None:
        return Check("database", None, "PostgreSQL: checked when `blockmon run` connects")
    if not path.exists():
        parent = next((p for p in [path.parent, *path.parents] if p.exists()), Path("/"))
        writable = os.access(parent, os.W_OK)
        return Check("database", writable, f"{path} will be created by the first round"
                     if writable else f"{path}: cannot create it ({parent} is not writable)")
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK):
        return Check("database", False, f"{path}: not writable by this user (read-only "
                     "commands such as `blockmon status` still work)")
    try:
        store = open_store(url, migrate=False, migration_sets=PROBE_DATABASE)
    except Exception as error:  # sqlite3's errors: the store room alone imports the driver
        return Check("database", False, f"{path}: {type(error).__name__}: {error}")
    try:
        integrity = store.database.scalar("PRAGMA quick_check")
        applied = {(name, version) for name, versions in
                   applied_versions(store.database).items() for version in versions}
    except Exception as error:  # a corrupt file: one line naming it
        return Check("database", False, f"{path}: {type(error).__name__}: {error}")
    finally:
        store.close()
    if integrity != "ok":
        return Check("database", False, f"{path}: integrity check: {integrity}")
    pending = [f"{migrations.name} {migration.version}" for migrations in PROBE_DATABASE
               for migration in migrations.migrations
               if (migrations.name, migration.version) not in applied]
    note = f"; migrations {', '.join(pending)} applied by the next run" if pending else \
        "; migrations current"
    return Check("database", True, f"{path} writable{note}")


def control_targets(settings: Settings) -> list[Target]:
    from targets.registry import load_registry  # the registry parser, only for this check

    registry = load_registry(settings.targets.registry_path)
    return [target for target in registry.targets if target.control]


async def check_helper(settings: Settings, session: aiohttp.ClientSession,
                       url: str | None) -> tuple[Check, Check]:
    """Reachable, authenticates, answers a control request; and the clock by its Date header."""
    options = settings.probe
    if not options.helper_url:
        return (Check("helper", False, "[probe] helper_url is not set: every round is degraded"
                      " (every verdict would be a guess)"),
                Check("clock", None, "no helper to compare with"))
    headers = {"Content-Type": "application/json"}
    if options.helper_token:
        headers["Authorization"] = f"Bearer {options.helper_token}"
    body = build_control_request(url or "https://example.org/", [], REQUEST_HEADERS)
    try:
        sent = time.time()
        async with session.post(options.helper_url, json=body, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=options.control_timeout)
                                ) as reply:
            payload, _ = await read_capped(reply.content, 4 * 1024 * 1024)
            status, date = reply.status, reply.headers.get("Date")
        received = time.time()
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        return (Check("helper", False, f"{options.helper_url}: {type(error).__name__} "
                      f"{error}".rstrip()), Check("clock", None, "no helper to compare with"))
    clock = check_clock(date, (sent + received) / 2)
    if status in (401, 403):
        return Check("helper", False, f"{options.helper_url}: {status}: the helper refuses "
                     "[probe] helper_token"), clock
    if status != 200:
        return Check("helper", False, f"{options.helper_url}: answered {status}"), clock
    try:
        parse_control_answer(payload)
    except ControlAnswerError as error:
        return Check("helper", False, f"{options.helper_url}: not a control answer ({error})"), clock
    return Check("helper", True, f"{options.helper_url} answered a control request for "
                 f"{url or 'https://example.org/'}"), clock


def check_clock(date_header: str | None, local: float) -> Check:
    if not date_header:
        return Check("clock", None, "the helper sent no Date header")
    try:
        remote = parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError):
        return Check("clock", None, f"unreadable Date header {date_header!r}")
    skew = round(local - remote) + 0  # the Date header has whole seconds; no "-0"
    ok = abs(skew) <= CLOCK_SKEW_LIMIT_SECONDS
    return Check("clock", ok, f"{skew:+.0f} s from the helper's clock"
                 + ("" if ok else f" (more than {CLOCK_SKEW_LIMIT_SECONDS:g} s: fix NTP)"))


async def check_resolvers(settings: Settings, name: str) -> list[Check]:
    checks = []
    for resolver in settings.probe.resolvers:
        host, _, port = resolver.rpartition(":") if resolver.count(":") == 1 else (resolver, "", "")
        query = dns.message.make_query(name, "A")
        try:
            answer = await dns.asyncquery.udp(query, host or resolver, port=int(port or 53),
                                              timeout=settings.probe.dns_timeout)
            checks.append(Check(f"resolver {resolver}", True,
                                f"answered {name} ({dns.rcode.to_text(answer.rcode())})"))
        except (dns.exception.DNSException, OSError) as error:
            checks.append(Check(f"resolver {resolver}", False,
                                f"no answer for {name}: {type(error).__name__}"))
    if not checks:
        checks.append(Check("resolvers", None, "system resolver ([probe] resolvers empty)"))
    return checks


async def check_control_targets(settings: Settings, targets: list[Target]) -> list[Check]:
    from probes.measure import measure_url  # the engine, only when doctor measures

    if not targets:
        return [Check("control targets", False, "the registry has no `control = true` target: "
                      "a broken network would read as blocks")]
    checks = []
    options = settings.probe.to_probe_options()
    for target in targets[:CONTROL_URLS_TRIED]:
        url = target.url_list()[0]
        measurement = await measure_url(url, options)
        found: dict[str, Any] = dict(measurement)
        keys: dict[str, Any] = found.get("test_keys") or {}
        ok = keys.get("accessible") is True
        failure = keys.get("dns_experiment_failure") or keys.get("http_experiment_failure")
        checks.append(Check(f"control {target.id}", ok, f"{url} " + (
            "reachable" if ok else f"not reachable ({failure or keys.get('blocking')})")))
    return checks


async def check_collector(settings: Settings, session: aiohttp.ClientSession) -> Check:
    from monitor.service.collector_client import CollectorRefused, check_in  # probe side

    collector = settings.collector
    if not collector.url:
        return Check("collector", None, "not configured ([collector] url unset)")
    if not collector.token:
        return Check("collector", False, f"{collector.url}: no [collector] token: run "
                     "`blockmon collector enrol` first")
    try:
        answer = await check_in(session, collector.url, collector.token, None, timeout=15)
    except CollectorRefused as error:
        return Check("collector", False, str(error))
    except (aiohttp.ClientError, OSError, TimeoutError) as error:
        return Check("collector", False, f"{collector.url}: {type(error).__name__} {error}")
    return Check("collector", True, f"{collector.url}: enrolled as {answer.probe_id}")


async def check_channels(settings: Settings, send_test: bool) -> list[Check]:
    from monitor.alerts.messages import build_test_payload  # alerts, only when asked
    from monitor.alerts.service import channels_from_settings  # alerts, only when asked

    if not settings.alerts.enabled:
        return [Check("alerts", None, "[alerts] enabled = false")]
    channels = channels_from_settings(settings.alerts)
    if not channels:
        return [Check("alerts", False, "enabled but no channel configured")]
    checks = []
    for name, channel in sorted(channels.items()):
        if not send_test:
            checks.append(Check(f"channel {name}", None, "configured (--send-test sends one)"))
            continue
        payload = build_test_payload(name, datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        try:
            await channel.send(payload, delivery_id=None)
            checks.append(Check(f"channel {name}", True, "test alert accepted"))
        except Exception as error:  # any channel error is this check's answer
            checks.append(Check(f"channel {name}", False, f"{type(error).__name__}: {error}"))
    return checks


async def run_checks(settings: Settings, *, send_test: bool,
                     emit: Callable[[Check], None]) -> list[Check]:
    checks: list[Check] = []

    def add(check: Check) -> None:
        checks.append(check)
        emit(check)

    add(check_database(settings))
    try:
        controls = control_targets(settings)
    except Exception as error:  # a broken registry is one failed line, not a traceback
        add(Check("targets", False, f"{settings.targets.registry_path}: {error}"))
        controls = []
    first_url = controls[0].url_list()[0] if controls else None
    host = (first_url or "https://example.org/").split("/")[2].split(":")[0]
    async with aiohttp.ClientSession() as session:
        helper, clock = await check_helper(settings, session, first_url)
        add(helper)
        add(clock)
        for check in await check_resolvers(settings, host):
            add(check)
        for check in await check_control_targets(settings, controls):
            add(check)
        add(await check_collector(settings, session))
    for check in await check_channels(settings, send_test):
        add(check)
    return checks


@click.command()
@click.option("--send-test", is_flag=True,
              help="Also send a test alert through every configured channel.")
@click.pass_context
def doctor(ctx: click.Context, send_test: bool) -> None:
    """Check settings, database, helper, clock, resolvers, controls, collector and channels."""
    config = (ctx.obj or {}).get("config_path")
    try:
        settings = load_settings(config)
    except SettingsError as error:
        click.echo(Check("settings", False, str(error)).line())
        ctx.exit(1)
    click.echo(Check("settings", True, str(config or "defaults and environment")).line())
    checks = asyncio.run(run_checks(settings, send_test=send_test,
                                    emit=lambda check: click.echo(check.line())))
    failed = [check.name for check in checks if check.ok is False]
    click.echo(f"{len(failed)} checks failed: {', '.join(failed)}" if failed
               else "all checks passed")
    if failed:
        ctx.exit(1)
