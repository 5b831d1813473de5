"""One Web Connectivity measurement: run the steps, ask the control, analyse, and many at once."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, TypedDict, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

from probes import __version__, garbage
from probes.analysis import analyze
from probes.asn import AsnDatabase, annotate_dns_answers, cached_asn_database, open_asn_database
from probes.connection import Connection
from probes.control import fetch_control
from probes.control_client import ControlClient
from probes.control_protocol import ControlAnswer
from probes.dns import addresses_from_queries, is_ip_literal, probe_dns, resolvers_for
from probes.endpoints import DEFAULT_PORTS
from probes.errors import InvalidInput
from probes.fingerprints_load import fingerprints_with_extras
from probes.fingerprints_match import warm_up
from probes.http import (
    HopSteps,
    is_bogon_address,
    new_request_entry,
    probe_http,
    public_networks_of,
    url_endpoint,
)
from probes.measurement_types import (
    AnalysisKeys,
    DnsQuery,
    HttpTransaction,
    Measurement,
    ObservationKeys,
    SniRetry,
    TcpConnect,
    TestKeys,
    TlsHandshake,
)
from probes.options import ProbeOptions
from probes.tcp import close_connection, format_endpoint, probe_tcp
from probes.throughput_probe import probe_throughput
from probes.tls import probe_tls

log = logging.getLogger(__name__)

TEST_NAME = "web_connectivity"
TEST_VERSION = "0.5.0"
DATA_FORMAT_VERSION = "0.2.0"
# An SNI a censor has no reason to filter, for the SNI-differential retry.
NEUTRAL_SERVER_NAME = "example.org"
# TLS failures worth an SNI retry: the handshake was cut, not merely a certificate we distrust
# (for those the presented chain is already the evidence).
_SNI_RETRY_FAILURES = frozenset(
    {"connection_reset", "generic_timeout_error", "eof_error", "ssl_failed_handshake"}
)

ResultCallback = Callable[[str, Measurement | None, str | None], Awaitable[None] | None]
_T = TypeVar("_T")


async def _gather_all(coroutines: list[Coroutine[Any, Any, _T]]) -> list[_T]:
    """asyncio.gather, without its task and callbacks for the usual case of one step (one address)."""
    if len(coroutines) == 1:
        return [await coroutines[0]]
    if not coroutines:
        return []
    return list(await asyncio.gather(*coroutines))


def validate_url(url: str) -> str:
    """Return the URL with an ASCII (IDNA) host, or raise InvalidInput saying what is wrong."""
    text = url.strip()
    if not text or any(c.isspace() for c in text):
        raise InvalidInput(f"URL {url!r}: empty or contains whitespace")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as error:
        raise InvalidInput(f"URL {url!r}: {error}") from None
    if parts.scheme.lower() not in DEFAULT_PORTS:
        raise InvalidInput(f"URL {url!r}: scheme must be http or https")
    host = parts.hostname
    if not host:
        raise InvalidInput(f"URL {url!r}: no host name")
    if port == 0:
        raise InvalidInput(f"URL {url!r}: port 0 is not a port")
    if is_ip_literal(host):
        return text
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidInput(f"URL {url!r}: host {host!r} is not a valid domain name") from None
    if ascii_host == host:
        return text
    netloc = ascii_host if port is None else f"{ascii_host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def new_measurement_uid(when: datetime, probe_cc: str) -> str:
    # Timestamp first so uids sort by time, as OONI's do; random tail for uniqueness.
    return f"{when:%Y%m%dT%H%M%S.%f}Z_{probe_cc}_webconnectivity_{secrets.token_hex(8)}"


def _ooni_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S")


async def measure_url(
    url: str,
    options: ProbeOptions,
    *,
    session: ControlClient | None = None,
    annotations: Mapping[str, str] | None = None,
    report_id: str = "adhoc",
    test_start_time: datetime | None = None,
    throughput_url: str | None = None,
    baseline_urls: tuple[str, ...] | None = None,
) -> Measurement:
    """Measure one URL and return the whole OONI measurement; network failures are data.

    The rate is measured on `throughput_url` when given (a large resource of the target), and
    compared with `baseline_urls` (default: options.throughput_baselines) if it looks throttled.
    """
    url = validate_url(url)
    started_at = datetime.now(UTC)
    started = time.monotonic()
    own_session = session is None and options.helper_url is not None
    if own_session:
        session = ControlClient()
    try:
        observed = await _collect_observations(url, options, session, started)
        observed["x_throughput"] = await probe_throughput(
            url,
            observed,
            options,
            session,
            throughput_url=throughput_url or dict(options.throughput_urls).get(url),
            baseline_urls=options.throughput_baselines if baseline_urls is None else baseline_urls,
        )
    finally:
        if own_session and session is not None:
            await session.close()
    # The verdict's tcp_connect (status.blocked filled in) replaces the probe's, in its place.
    test_keys: TestKeys = {**observed, **_analysis_keys(observed, options)}
    identity = options.identity
    resolvers = resolvers_for(options)
    return {
        "measurement_uid": new_measurement_uid(started_at, identity.probe_cc),
        "report_id": report_id,
        "input": url,
        "measurement_start_time": _ooni_time(started_at),
        "test_start_time": _ooni_time(test_start_time or started_at),
        "test_runtime": round(time.monotonic() - started, 6),
        "probe_cc": identity.probe_cc,
        "probe_asn": identity.probe_asn,
        "probe_network_name": identity.probe_network_name,
        "probe_ip": "127.0.0.1",
        "resolver_ip": resolvers[0].ip if resolvers else "",
        **_resolver_network(resolvers[0].ip if resolvers else "", await _asn_database(options)),
        "software_name": "blockmon",
        "software_version": __version__,
        "test_name": TEST_NAME,
        "test_version": TEST_VERSION,
        "data_format_version": DATA_FORMAT_VERSION,
        "annotations": {"engine_name": "blockmon", "vantage_id": identity.vantage_id, **(annotations or {})},
        "test_keys": test_keys,
    }


async def _collect_observations(
    url: str, options: ProbeOptions, session: ControlClient | None, started: float
) -> ObservationKeys:
    scheme, host, port = url_endpoint(url)
    if is_ip_literal(host):
        queries: list[DnsQuery] = []
        addresses = [host.strip("[]")]
    else:
        queries = await probe_dns(host, options, started=started)
        addresses = addresses_from_queries(queries)
        asn_database = await _asn_database(options)
        if asn_database is not None:
            annotate_dns_answers(queries, asn_database)
    # Bogons (a lying resolver's 127.0.0.1 or 10.x) are never connected to, nor sent to the helper.
    public = [ip for ip in addresses if not is_bogon_address(ip, options)]
    control_task = None
    if session is not None and options.helper_url:
        control_task = asyncio.create_task(fetch_control(session, options, url, public))

    try:
        tcp_results = await _gather_all([probe_tcp(ip, port, options, started=started) for ip in public])
        tcp_connect = [entry for entry, _ in tcp_results]
        connections: list[tuple[str, Connection]] = [
            (ip, connection) for ip, (_, connection) in zip(public, tcp_results, strict=True) if connection
        ]
        tls_handshakes: list[TlsHandshake] = []
        if scheme == "https" and connections:
            tls_results = await _gather_all(
                [probe_tls(ip, port, host, options, connection=connection, started=started) for ip, connection in connections]
            )
            tls_handshakes = [entry for entry, _ in tls_results]
            connections = [(ip, connection) for (ip, _), (_, connection) in zip(connections, tls_results, strict=True) if connection]
        hop_steps = HopSteps()
        requests = await _fetch_first(url, port, connections, tcp_connect, tls_handshakes, options, started, hop_steps)
        # Redirect hops' own steps come after the measured URL's, as they happened.
        queries = queries + hop_steps.queries
        tcp_connect += hop_steps.tcp_connect
        tls_handshakes += hop_steps.tls_handshakes
        control, control_failure = await control_task if control_task else ({}, None)
        control_task = None
    finally:
        if control_task is not None:
            control_task.cancel()

    sni_differential: list[SniRetry] = []
    if scheme == "https":
        retries = await _sni_retries(tls_handshakes, control, options, started)
        for entry in retries:
            tls_handshakes.append(entry)
            sni_differential.append(
                {
                    "address": entry["address"],
                    "server_name": entry["server_name"],
                    "failure": entry["failure"],
                    "t": round(entry["t"] - entry["t0"], 6),
                }
            )
    return {
        "queries": queries,
        "tcp_connect": tcp_connect,
        "tls_handshakes": tls_handshakes,
        "requests": requests,
        "control": control,
        "control_failure": control_failure,
        "sni_differential": sni_differential,
    }


async def _fetch_first(
    url: str,
    port: int,
    connections: list[tuple[str, Connection]],
    tcp_connect: list[TcpConnect],
    tls_handshakes: list[TlsHandshake],
    options: ProbeOptions,
    started: float,
    hop_steps: HopSteps,
) -> list[HttpTransaction]:
    """HTTP over the first working connection (one handshake per measurement, as OONI LTE)."""
    if not connections:
        return _unreachable_requests(url, port, tcp_connect, tls_handshakes, started)
    (ip, connection), spare = connections[0], connections[1:]
    await _gather_all([close_connection(other) for _, other in spare])
    requests = await probe_http(
        url, options, connection=connection, address=format_endpoint(ip, port), started=started, hop_steps=hop_steps
    )
    # probes/http.py returns plain dicts of this shape.
    return cast(list[HttpTransaction], requests)


def _unreachable_requests(
    url: str, port: int, tcp_connect: list[TcpConnect], tls_handshakes: list[TlsHandshake], started: float
) -> list[HttpTransaction]:
    """No connection to speak HTTP over: the request failed as the last step before it did.

    With nothing to connect to (no answer, or only bogons) there was no request at all.
    """
    failed_tls = [entry for entry in tls_handshakes if entry["failure"]]
    failed_tcp = [entry for entry in tcp_connect if entry["status"]["failure"]]
    if failed_tls:
        failure, address = failed_tls[0]["failure"], failed_tls[0]["address"]
    elif failed_tcp:
        failure = failed_tcp[0]["status"]["failure"]
        address = format_endpoint(failed_tcp[0]["ip"], port)
    else:
        return []
    entry = cast(HttpTransaction, new_request_entry(url, address, time.monotonic() - started))
    entry["failure"] = failure
    entry["t"] = entry["t0"]
    return [entry]


async def _sni_retries(
    tls_handshakes: list[TlsHandshake], control: ControlAnswer, options: ProbeOptions, started: float
) -> list[TlsHandshake]:
    control_tls = control.get("tls_handshake") or {}
    candidates = [
        entry
        for entry in tls_handshakes
        if entry["failure"] in _SNI_RETRY_FAILURES
        and not entry.get("x_redirect_hop")
        and (control_tls.get(entry["address"]) or {}).get("status") is True
    ]
    attempts = []
    for entry in candidates:
        ip, _, port_text = entry["address"].rpartition(":")
        ip = ip.strip("[]")
        for server_name in (NEUTRAL_SERVER_NAME, None):
            attempts.append(_sni_retry(ip, int(port_text), server_name, options, started))
    return await _gather_all(attempts)


async def _sni_retry(
    ip: str, port: int, server_name: str | None, options: ProbeOptions, started: float
) -> TlsHandshake:
    # Unverified: a neutral name cannot match the certificate; what counts is getting through.
    entry, connection = await probe_tls(ip, port, server_name, options, verify=False, started=started)
    await close_connection(connection)
    entry["x_sni_retry"] = True
    return entry


async def _asn_database(options: ProbeOptions) -> AsnDatabase | None:
    if not options.asn_database:
        return None
    # Parsed once per process (again when the file changes), off the event loop: ~2 s for 500k lines.
    loaded = cached_asn_database(options.asn_database)
    if loaded is not None:
        return loaded
    return await asyncio.to_thread(open_asn_database, options.asn_database)


class _ResolverNetwork(TypedDict):
    resolver_asn: str
    resolver_network_name: str


def _resolver_network(resolver_ip: str, database: AsnDatabase | None) -> _ResolverNetwork:
    info = database.lookup(resolver_ip) if database is not None and resolver_ip else None
    return {
        "resolver_asn": info.as_label if info else "AS0",
        "resolver_network_name": info.name if info else "",
    }


def prepare(options: ProbeOptions) -> None:
    """What every measurement reads, loaded and worked out before any is in flight (the
    fingerprints and their one-off tables): a first Russian page must not stall a round's steps."""
    warm_up(fingerprints_with_extras(options.extra_fingerprints))


def _analysis_keys(test_keys: ObservationKeys, options: ProbeOptions) -> AnalysisKeys:
    # The packaged fingerprints (plus [probe] extra_fingerprints), loaded once per process.
    verdict = analyze(test_keys, public_networks=public_networks_of(options),
                      fingerprints=fingerprints_with_extras(options.extra_fingerprints))
    return verdict.as_test_keys()


async def measure_many(
    urls: Iterable[str],
    options: ProbeOptions,
    concurrency: int,
    on_result: ResultCallback,
    *,
    annotations: Mapping[str, str] | None = None,
    report_id: str = "adhoc",
) -> int:
    """Measure every URL with at most `concurrency` in flight; returns how many were measured.

    `on_result(url, measurement, None)` for each measurement, `on_result(url, None, error)` when a
    URL cannot be measured; one bad URL never stops the others.
    """
    prepare(options)
    test_start_time = datetime.now(UTC)
    pending = iter(urls)
    measured = 0
    async with garbage.tuned_while_busy(), ControlClient(max_idle=max(concurrency, 1)) as session:

        async def worker() -> None:
            nonlocal measured
            for url in pending:
                measurement, error = None, None
                try:
                    measurement = await measure_url(
                        url,
                        options,
                        session=session,
                        annotations=annotations,
                        report_id=report_id,
                        test_start_time=test_start_time,
                    )
                    measured += 1
                except InvalidInput as invalid:
                    error = str(invalid)
                except Exception as bug:  # a bug on one URL must not lose the whole round
                    log.exception("measuring %s failed", url)
                    error = f"URL {url!r}: internal error {type(bug).__name__}: {bug}"
                outcome = on_result(url, measurement, error)
                if outcome is not None:
                    await outcome

        await asyncio.gather(*(worker() for _ in range(max(concurrency, 1))))
    return measured
