"""The throughput step: the rate of the page (or the target's throughput_url) and its baselines."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from probes.analysis_throttle import MIN_RATE_BYTES, is_throttling_candidate
from probes.control import fetch_control
from probes.control_client import ControlClient
from probes.http import HopSteps, fetch_one, probe_http, url_endpoint
from probes.options import ProbeOptions
from probes.tcp import format_endpoint, probe_tcp
from probes.throughput import BaselineEntry, ThroughputKeys, ThroughputProfile
from probes.tls import probe_tls
from targets.model import Target, TargetList

# An SNI a censor has no reason to shape (the same as the SNI-differential retry's).
NEUTRAL_SERVER_NAME = "example.org"
# A rate fetch keeps this much of the body; the rest is only counted, to the throughput budget.
RATE_BODY_KEEP = MIN_RATE_BYTES


async def probe_throughput(
    url: str,
    observed: Mapping[str, Any],
    options: ProbeOptions,
    session: ControlClient | None,
    *,
    throughput_url: str | None = None,
    baseline_urls: Sequence[str] = (),
) -> ThroughputKeys:
    """The probe's and control's rates (on throughput_url when given, else the page itself); and,
    only when the probe's is far below the control's, the baselines that tell throttling apart."""
    if throughput_url:
        probe, address, handshake = await _fetch_rate(throughput_url, options)
        control_answer: Mapping[str, Any] = {}
        if session is not None and options.helper_url:
            ip = address.rpartition(":")[0].strip("[]")
            control_answer, _ = await fetch_control(session, options, throughput_url, [ip] if ip else [])
        control = (control_answer.get("x_blockmon") or {}).get("throughput")
    else:
        requests = observed.get("requests") or []
        final = requests[0] if requests else {}
        probe, address = final.get("x_throughput"), str(final.get("address") or "")
        handshake = _handshake_seconds(observed.get("tls_handshakes") or [], address)
        control = ((observed.get("control") or {}).get("x_blockmon") or {}).get("throughput")
    keys: ThroughputKeys = {
        "url": throughput_url or url,
        "probe": probe,
        "control": control,
        "tls_handshake_seconds": handshake,
        "baseline": [],
    }
    if is_throttling_candidate(keys):
        keys["baseline"] = await _fetch_baselines(keys["url"], address, options, baseline_urls)
    return keys


async def _fetch_rate(url: str, options: ProbeOptions) -> tuple[ThroughputProfile | None, str, float | None]:
    """(profile, address, TLS handshake seconds) of a fresh fetch of a rate URL."""
    steps = HopSteps()
    requests = await probe_http(url, _rate_options(options), hop_steps=steps)
    final = requests[0] if requests else {}
    address = str(final.get("address") or "")
    return final.get("x_throughput"), address, _handshake_seconds(steps.tls_handshakes, address)


async def _fetch_baselines(
    url: str, address: str, options: ProbeOptions, baseline_urls: Sequence[str]
) -> list[BaselineEntry]:
    entries = []
    scheme, _, _ = url_endpoint(url)
    if scheme == "https" and address:
        entries.append(await _fetch_with_neutral_sni(url, address, options))
    for baseline_url in baseline_urls:
        profile, used, handshake = await _fetch_rate(baseline_url, options)
        entries.append(
            {
                "kind": "url",
                "url": baseline_url,
                "address": used,
                "server_name": url_endpoint(baseline_url)[1],
                "failure": None if profile else "no_response",
                "tls_handshake_seconds": handshake,
                "profile": profile,
            }
        )
    return entries


async def _fetch_with_neutral_sni(url: str, address: str, options: ProbeOptions) -> BaselineEntry:
    """The same URL at the same address, its ClientHello naming another host: unverified, since
    the certificate cannot match; what counts is how fast the bytes come when the SNI is neutral."""
    ip, _, port_text = address.rpartition(":")
    ip, port = ip.strip("[]"), int(port_text)
    entry: BaselineEntry = {
        "kind": "neutral_sni",
        "url": url,
        "address": address,
        "server_name": NEUTRAL_SERVER_NAME,
        "failure": None,
        "tls_handshake_seconds": None,
        "profile": None,
    }
    rate_options = _rate_options(options)
    tcp_entry, connection = await probe_tcp(ip, port, rate_options)
    if connection is None:
        entry["failure"] = tcp_entry["status"]["failure"]
        return entry
    tls_entry, connection = await probe_tls(ip, port, NEUTRAL_SERVER_NAME, rate_options, verify=False, connection=connection)
    entry["tls_handshake_seconds"] = round(tls_entry["t"] - tls_entry["t0"], 6)
    if connection is None:
        entry["failure"] = tls_entry["failure"]
        return entry
    fetched = await fetch_one(url, connection, format_endpoint(ip, port), rate_options)  # closes them
    entry["failure"] = fetched["failure"]
    entry["profile"] = fetched.get("x_throughput")
    return entry


def _rate_options(options: ProbeOptions) -> ProbeOptions:
    return dataclasses.replace(options, body_limit=min(options.body_limit, RATE_BODY_KEEP))


def _handshake_seconds(handshakes: Sequence[Mapping[str, Any]], address: str) -> float | None:
    for handshake in handshakes:
        if handshake.get("address") == address and handshake.get("failure") is None:
            return round(float(handshake["t"]) - float(handshake["t0"]), 6)
    return None


def with_vantage_baselines(options: ProbeOptions, lists: Sequence[TargetList]) -> ProbeOptions:
    """The options with the lists' control targets' throughput URLs as the vantage's baselines,
    unless some were configured already."""
    baselines = tuple(url for target_list in lists for url in target_list.throughput_baselines())
    if not baselines or options.throughput_baselines:
        return options
    return dataclasses.replace(options, throughput_baselines=baselines)


def rate_arguments(target: Target, options: ProbeOptions, url: str) -> dict[str, Any]:
    """measure_url's rate arguments for one URL of a target naming a throughput or baseline URL.

    The throughput URL stands for the URLs of its own site (same domain, its last two labels):
    a mirror elsewhere (azattyq.github.io) is measured on its own page, not on the outlet's.
    """
    if not target.throughput_url and not target.baseline_url:
        return {}
    own = (target.baseline_url,) if target.baseline_url else ()
    same_site = bool(target.throughput_url) and _site(target.throughput_url or "") == _site(url)
    return {
        "throughput_url": target.throughput_url if same_site else None,
        "baseline_urls": own + options.throughput_baselines,
    }


def _site(url: str) -> str:
    host = url_endpoint(url)[1].rstrip(".").lower()
    return ".".join(host.split(".")[-2:])
