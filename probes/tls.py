"""TLS step: handshake with SNI over an open TCP connection, recorded as an OONI df-006 entry."""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from typing import Literal

from probes.certificates import describe_certificate, peer_certificate_entry
from probes.connection import Connection
from probes.errors import NETWORK_ERRORS, classify_failure
from probes.measurement_types import CertificateDescription, PeerCertificate, TlsHandshake
from probes.options import ProbeOptions
from probes.tcp import close_connection, format_endpoint, probe_tcp
from probes.vocabulary import Failure

VerifyMode = Literal["full", "chain", "none"]

# Browsers offer h2 too, but our HTTP step speaks HTTP/1.1 only; offering h2 would be a lie.
ALPN_PROTOCOLS = ["http/1.1"]


@functools.cache
def client_context(ca_file: str | None, mode: VerifyMode) -> ssl.SSLContext:
    """One context per (CA bundle, mode): loading a trust store costs milliseconds each time."""
    # create_default_context loads the system store, which honours SSL_CERT_FILE/SSL_CERT_DIR.
    context = ssl.create_default_context(cafile=ca_file)
    if mode != "full":
        context.check_hostname = False
    if mode == "none":
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(ALPN_PROTOCOLS)
    return context


async def probe_tls(
    ip: str,
    port: int,
    server_name: str | None,
    options: ProbeOptions,
    *,
    verify: bool = True,
    connection: Connection | None = None,
    started: float | None = None,
) -> tuple[TlsHandshake, Connection | None]:
    """Handshake over `connection` (or a fresh connection); returns the entry and the TLS connection.

    On a verification failure the entry also carries the chain the server presented, fetched by
    one unverified handshake to the same address: an interception issuer is the evidence.
    """
    started = time.monotonic() if started is None else started
    t0 = time.monotonic() - started
    entry: TlsHandshake = {
        "address": format_endpoint(ip, port),
        "server_name": server_name,
        "failure": None,
        "tls_version": None,
        "cipher_suite": None,
        "negotiated_protocol": None,
        "no_tls_verify": not verify,
        "peer_certificates": [],
        "certificate_chain": [],
        "t0": round(t0, 6),
        "t": round(t0, 6),  # the end, set below on every path
    }
    if connection is None:
        tcp_entry, connection = await probe_tcp(ip, port, options, started=started)
        if connection is None:
            entry["failure"] = tcp_entry["status"]["failure"]
            entry["t"] = tcp_entry["t"]
            return entry, None
    mode: VerifyMode = "none" if not verify else ("full" if server_name else "chain")
    failure = await _handshake(connection, server_name, options, mode)
    entry["t"] = round(time.monotonic() - started, 6)
    if failure is None:
        _record_session(entry, connection)
        return entry, connection
    entry["failure"] = failure
    await close_connection(connection)
    if verify and failure.startswith("ssl_") and failure != "ssl_failed_handshake":
        await _record_presented_chain(entry, ip, port, server_name, options)
    return entry, None


async def _handshake(
    connection: Connection, server_name: str | None, options: ProbeOptions, mode: VerifyMode
) -> Failure | None:
    context = client_context(options.ca_file, mode)
    try:
        async with asyncio.timeout(options.tls_timeout):
            await connection.start_tls(context, server_hostname=server_name)
    except NETWORK_ERRORS as error:
        return classify_failure(error)
    return None


async def _record_presented_chain(
    entry: TlsHandshake, ip: str, port: int, server_name: str | None, options: ProbeOptions
) -> None:
    _, connection = await probe_tcp(ip, port, options)
    if connection is None:
        return
    if await _handshake(connection, server_name, options, "none") is None:
        entry["peer_certificates"], entry["certificate_chain"] = _peer_chain(connection)
    await close_connection(connection)


def _record_session(entry: TlsHandshake, connection: Connection) -> None:
    ssl_object = connection.ssl_object
    assert ssl_object is not None, "called after a handshake that succeeded"
    entry["tls_version"] = ssl_object.version()
    cipher = ssl_object.cipher()
    entry["cipher_suite"] = cipher[0] if cipher else None
    entry["negotiated_protocol"] = ssl_object.selected_alpn_protocol()
    entry["peer_certificates"], entry["certificate_chain"] = _peer_chain(connection)


def _peer_chain(connection: Connection) -> tuple[list[PeerCertificate], list[CertificateDescription]]:
    ssl_object = connection.ssl_object
    if ssl_object is None:
        return [], []
    ders = _unverified_chain_ders(ssl_object)
    return [peer_certificate_entry(der) for der in ders], [describe_certificate(der) for der in ders]


def _unverified_chain_ders(ssl_object: ssl.SSLObject) -> list[bytes]:
    # Python 3.11 has the whole presented chain only on the private _sslobj (public in 3.13).
    native = getattr(ssl_object, "_sslobj", None)
    get_chain = getattr(native, "get_unverified_chain", None)
    if get_chain is not None:
        chain = get_chain() or []
        return [certificate.public_bytes(ssl._ssl.ENCODING_DER) for certificate in chain]  # type: ignore[attr-defined]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [leaf] if leaf else []
