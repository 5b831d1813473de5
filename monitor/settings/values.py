"""Value checks and conversions for monitor.settings: TOML or environment text to typed values."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from monitor.alerts.vocabulary import ALERT_KINDS
from probes.endpoints import split_host_port

# ---- value checks: None when fine, else the reason ----------------------------------------

def positive(value: Any) -> str | None:
    return None if value > 0 else "must be greater than 0"


def not_negative(value: Any) -> str | None:
    return None if value >= 0 else "must be 0 or more"


def country_code(value: str) -> str | None:
    return None if re.fullmatch(r"[A-Z]{2}", value) else "must be two upper-case letters (ISO 3166)"


def as_number(value: str) -> str | None:
    return None if re.fullmatch(r"AS\d+", value) else "must look like AS9198"


def identifier(value: str) -> str | None:
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", value):
        return None
    return "must be 1-64 letters, digits, '.', '_' or '-'"


def http_url(value: str | None) -> str | None:
    if value is None or re.match(r"https?://[^\s/]+", value):
        return None
    return "must be an http:// or https:// URL"


def host_port(value: str) -> str | None:
    try:
        split_host_port(value)
    except ValueError:
        return "must be HOST:PORT"
    return None


def resolver_addresses(values: tuple[str, ...]) -> str | None:
    for resolver in values:
        address, port = resolver, ""
        if resolver.count(":") == 1:  # IPv4:PORT; a bare IPv6 address has several colons
            address, port = resolver.split(":")
        elif resolver.startswith("[") and "]:" in resolver:
            address, port = resolver[1:].split("]:")
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return f"{resolver!r} is not an IP address or IP:PORT"
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            return f"{resolver!r} has a bad port"
    return None


def address_ranges(values: tuple[str, ...]) -> str | None:
    for network in values:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            return f"{network!r} is not an address range like 127.0.0.0/8"
    return None


def database_scheme(value: str | None) -> str | None:
    if value is None or value.startswith(("sqlite:///", "postgresql://", "postgres://")):
        return None
    return "must start with sqlite:/// or postgresql://"


def crontab(value: str | None) -> str | None:
    if value is None:
        return None
    if len(value.split()) != 5:
        return "must be a 5-field crontab expression like '0 * * * *'"
    from apscheduler.triggers.cron import CronTrigger  # the parser the scheduler will use

    try:
        CronTrigger.from_crontab(value, timezone="UTC")
    except ValueError as error:
        return f"is not a crontab expression: {error}"
    return None


def within(low: int, high: int) -> Callable[[Any], str | None]:
    """A check that a number lies in [low, high]: huge values made timers overflow."""
    def check(value: Any) -> str | None:
        return None if low <= value <= high else f"must be from {low} to {high}"
    return check


def list_names(values: tuple[str, ...]) -> str | None:
    for name in values:
        if identifier(name):
            return f"list name {name!r} must be letters, digits, '.', '_' or '-'"
    return None


def alert_kinds(values: tuple[str, ...]) -> str | None:
    for kind in values:
        if kind not in ALERT_KINDS:
            return f"unknown alert kind {kind!r} (known: {', '.join(ALERT_KINDS)})"
    return None


def readable_file(value: str) -> str | None:
    return None if not value or os.path.isfile(value) else "no such file"


def fraction(value: float) -> str | None:
    return None if 0 < value <= 1 else "must be more than 0 and at most 1"


@dataclass(frozen=True, slots=True)
class WatchWindow:
    """A period of closer watching (an election, a protest): other interval, maybe other lists."""

    start: datetime
    end: datetime
    interval_minutes: int
    lists: tuple[str, ...] = ()


def watch_window_order(windows: tuple[WatchWindow, ...]) -> str | None:
    for number, window in enumerate(windows, start=1):
        if window.end <= window.start:
            return f"window {number} ends before it starts"
        if window.interval_minutes <= 0:
            return f"window {number}: interval_minutes must be greater than 0"
    return None


# ---- conversion ---------------------------------------------------------------------------

def parse_utc_time(text: Any) -> datetime:
    if not isinstance(text, (str, datetime)):
        raise ValueError("expected an ISO 8601 time like 2026-12-01T00:00:00Z")
    moment = text if isinstance(text, datetime) else datetime.fromisoformat(
        text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _convert_window(value: Any) -> WatchWindow:
    if not isinstance(value, Mapping):
        raise ValueError("each watch window must be a table {start, end, interval_minutes, lists}")
    unknown = set(value) - {"start", "end", "interval_minutes", "lists"}
    if unknown:
        raise ValueError(f"unknown watch window key {sorted(unknown)[0]!r}")
    missing = {"start", "end", "interval_minutes"} - set(value)
    if missing:
        raise ValueError(f"watch window lacks {sorted(missing)[0]!r}")
    return WatchWindow(
        start=parse_utc_time(value["start"]), end=parse_utc_time(value["end"]),
        interval_minutes=convert_value(int, value["interval_minutes"], from_env=False),
        lists=convert_value(tuple[str, ...], value.get("lists", []), from_env=False))


def convert_value(kind: Any, value: Any, *, from_env: bool) -> Any:
    """Turns a TOML or environment value into `kind`; raises ValueError with the reason."""
    origin = typing.get_origin(kind)
    if origin in (types.UnionType, typing.Union):  # X | None
        inner = next(arg for arg in typing.get_args(kind) if arg is not type(None))
        if value is None or (from_env and value == ""):
            return None
        return convert_value(inner, value, from_env=from_env)
    if origin is tuple:
        item_kind = typing.get_args(kind)[0]
        if from_env and isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                value = json.loads(text)
            else:
                value = [part.strip() for part in text.split(",") if part.strip()]
        if not isinstance(value, list | tuple):
            raise ValueError("expected a list")
        if item_kind is WatchWindow:
            return tuple(_convert_window(item) for item in value)
        return tuple(convert_value(item_kind, item, from_env=from_env) for item in value)
    if kind is bool:
        if from_env and isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value
    if kind is int:
        if from_env and isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        return value
    if kind is float:
        if from_env and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value
    raise TypeError(f"settings cannot convert to {kind!r}")  # a programming error


# ---- TOML text of a value ----------------------------------------------------------------

def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML form for {value!r}")
