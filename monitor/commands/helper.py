"""`blockmon helper`: run the control helper (oohelperd-shaped) on HOST:PORT."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import signal
from pathlib import Path

import click

TOKEN_ENV = "BLOCKMON_HELPER_TOKEN"


def parse_listen(text: str) -> tuple[str, int]:
    """'HOST:PORT' / '[v6]:PORT' -> (host, port); a bad one raises click.BadParameter naming it."""
    host, separator, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not separator or not host or not port_text.isdigit() or not 0 <= int(port_text) < 65536:
        raise click.BadParameter(
            f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:8787", param_hint="--listen"
        )
    return host, int(port_text)


def _check_ranges(ranges: tuple[str, ...]) -> tuple[str, ...]:
    for cidr in ranges:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise click.BadParameter(
                f"{cidr!r} is not a CIDR range", param_hint="--lab-public-range"
            ) from None
    return ranges


def _read_token(token: str | None) -> str | None:
    if token:
        return token
    token_file = os.environ.get(f"{TOKEN_ENV}_FILE")
    if not token_file:
        return None
    try:
        return Path(token_file).read_text(encoding="utf-8").strip() or None
    except OSError as error:
        raise click.ClickException(f"{TOKEN_ENV}_FILE {token_file}: {error.strerror}") from None


def load_asn_database_option(path: str, option: str = "--asn-database") -> None:
    """Load (and cache for the process) the AS database now, so a bad file is one error line."""
    from probes.asn import AsnDatabaseError, open_asn_database

    try:
        open_asn_database(path)
    except AsnDatabaseError as error:
        raise click.BadParameter(str(error), param_hint=option) from None


def check_ca_file_option(path: str, option: str = "--ca-file") -> None:
    """Load the CA bundle once now, so a file that is no PEM bundle is one error line, not a
    traceback at start (helper) or on every TLS step (measure)."""
    import ssl

    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError) as error:
        reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or error
        raise click.BadParameter(f"{path}: not a readable PEM CA bundle ({reason})", param_hint=option) from None


async def serve(settings: object, host: str, port: int) -> None:
    from aiohttp import web

    from probes.helper import HelperSettings, build_app

    assert isinstance(settings, HelperSettings)
    runner = web.AppRunner(build_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise click.ClickException(f"--listen {host}:{port}: {error.strerror or error}") from None
    # With port 0 the system picked one: report the real one so callers can connect.
    bound_port = runner.addresses[0][1] if runner.addresses else port
    click.echo(f"blockmon helper listening on http://{host}:{bound_port}/", err=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


@click.command()
@click.option(
    "--listen",
    default="127.0.0.1:8787",
    show_default=True,
    help="HOST:PORT to serve on (port 0 = any free port).",
)
@click.option(
    "--resolver",
    "resolvers",
    multiple=True,
    metavar="IP[:PORT]",
    help="DNS server the helper asks (repeatable); default: the system's resolvers.",
)
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="CA bundle (PEM) to verify TLS with; default: the system store.",
)
@click.option(
    "--lab-public-range",
    "public_ranges",
    multiple=True,
    metavar="CIDR",
    help="Treat this bogon range as public (the offline lab on 127.0.0.0/8); repeatable.",
)
@click.option(
    "--allow-private",
    is_flag=True,
    help="Serve targets in loopback/private/bogon ranges too (only on an isolated test network).",
)
@click.option(
    "--token",
    default=None,
    envvar=TOKEN_ENV,
    help=f"Require 'Authorization: Bearer TOKEN'. Env: {TOKEN_ENV} (or {TOKEN_ENV}_FILE).",
)
@click.option(
    "--max-concurrency",
    default=64,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Control requests measured at once; more wait in a bounded queue, then get 503.",
)
@click.option(
    "--cache-ttl",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0, 3600),
    help="Seconds to reuse per-host DNS and per-(address, SNI) TCP/TLS results.",
)
@click.option(
    "--asn-database",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="PATH",
    help="iptoasn.com TSV (ip2asn-combined.tsv.gz) to fill ip_info[addr].asn; see docs/asn.md.",
)
def helper(
    listen: str,
    resolvers: tuple[str, ...],
    ca_file: str | None,
    public_ranges: tuple[str, ...],
    allow_private: bool,
    token: str | None,
    max_concurrency: int,
    cache_ttl: float,
    asn_database: str | None,
) -> None:
    """Run the control helper: measures URLs from this (uncensored) side for probes.

    Speaks OONI's oohelperd protocol (POST / or /api/v1/control, GET /health); see
    docs/control-protocol.md. Refuses targets in private or bogon ranges unless told otherwise.
    """
    from probes.dns import parse_resolver
    from probes.errors import InvalidInput
    from probes.helper import HelperSettings

    host, port = parse_listen(listen)
    for resolver in resolvers:
        try:
            parse_resolver(resolver)
        except InvalidInput as error:
            raise click.BadParameter(str(error), param_hint="--resolver") from None
    if ca_file:
        check_ca_file_option(ca_file)
    if asn_database:
        load_asn_database_option(asn_database)
    settings = HelperSettings(
        resolvers=resolvers,
        ca_file=ca_file,
        public_ranges=_check_ranges(public_ranges),
        allow_private=allow_private,
        token=_read_token(token),
        max_concurrency=max_concurrency,
        max_queue=max_concurrency * 8,
        cache_ttl=cache_ttl,
        asn_database=asn_database or None,
    )
    asyncio.run(serve(settings, host, port))
