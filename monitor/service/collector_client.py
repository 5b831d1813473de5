"""Probe side of the collector API: register with an enrolment secret, check in for target lists."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp

from monitor.settings import ProbeSettings
from probes import __version__


class CollectorRefused(RuntimeError):
    """The collector answered with an error; the message is its status, error and field."""


@dataclass(frozen=True, slots=True)
class CheckIn:
    probe_id: str
    targets_version: int | None
    targets: dict[str, Any] | None  # None when the probe already has the latest version
    upload: dict[str, Any]


async def _post(session: aiohttp.ClientSession, url: str, body: dict[str, Any],
                token: str | None, timeout: float) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.post(url, json=body, headers=headers,
                            timeout=aiohttp.ClientTimeout(total=timeout)) as response:
        text = await response.text()
        try:
            answer = json.loads(text)
        except json.JSONDecodeError:
            answer = {"error": text[:200]}
        if response.status >= 400 or not isinstance(answer, dict):
            error = answer.get("error") if isinstance(answer, dict) else text[:200]
            field = answer.get("field") if isinstance(answer, dict) else None
            where = f" ({field})" if field else ""
            raise CollectorRefused(f"{url}: {response.status} {error}{where}")
        return answer


async def register_with_collector(
    session: aiohttp.ClientSession, collector_url: str, enrolment_secret: str,
    identity: ProbeSettings,
    *, timeout: float = 30.0,
) -> tuple[str, str]:
    """Enrol this probe (identity: [probe] settings); returns (probe_id, token)."""
    answer = await _post(session, collector_url.rstrip("/") + "/api/v1/register", {
        "enrolment_secret": enrolment_secret,
        "vantage_id": identity.vantage_id,
        "probe_cc": identity.cc,
        "probe_asn": identity.asn,
        "probe_network_name": identity.network_name,
    }, None, timeout)
    return str(answer["probe_id"]), str(answer["token"])


async def check_in(
    session: aiohttp.ClientSession, collector_url: str, token: str,
    known_targets_version: int | None, *, timeout: float = 30.0,
) -> CheckIn:
    """Say hello; get the target list when it changed since `known_targets_version`."""
    answer = await _post(session, collector_url.rstrip("/") + "/api/v1/check-in", {
        "software_version": __version__, "targets_version": known_targets_version,
    }, token, timeout)
    return CheckIn(str(answer["probe_id"]), answer.get("targets_version"), answer.get("targets"),
                   dict(answer.get("upload") or {}))
