"""`blockmon helper`: run the control helper (oohelperd-shaped) on HOST:PORT."""

from __future__ import annotations

import asyncio
import ipaddress
import os
from pathlib import Path

import click

from monitor.commands.options import check_ca_file_option, load_asn_database_option
from monitor.serving import serve_until_stopped
from probes.dns import parse_resolver
from probes.endpoints import split_host_port
from probes.errors import InvalidInput
from probes.helper import HelperSettings, build_app
from probes.server_limits import MAX_CONNECTIONS_PER_CLIENT

TOKEN_ENV = "BLOCKMON_HELPER_TOKEN"


def parse_listen(text: str) -> tuple[str, int]:
    """'HOST:PORT' / '[v6]:PORT' -> (host, port); a bad one raises click.BadParameter naming it."""
    try:
        return split_host_port(text, allow_port_zero=True)
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: expected HOST:PORT, e.g. 127.0.0.1:8787", param_hint="--listen"
        ) from None


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


async def serve_helper(settings: HelperSettings, host: str, port: int, *,
                       max_connections_per_client: int = MAX_CONNECTIONS_PER_CLIENT) -> None:
    def announce(bound_port: int) -> None:
        # With port 0 the system picked one: report the real one so callers can connect.
        click.echo(f"blockmon helper listening on http://{host}:{bound_port}/", err=False)

    try:
        await serve_until_stopped(build_app(settings), host, port, on_listening=announce, backlog=1024,
                                  max_connections_per_client=max_connections_per_client)
    except OSError as error:
        raise click.ClickException(f"--listen {host}:{port}: {error.strerror or error}") from None


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
    "--max-connections-per-client",
    default=MAX_CONNECTIONS_PER_CLIENT,
    show_default=True,
    type=click.IntRange(0, 65536),
    help="Connections one client address may hold open; more get 503 and are closed (0: no cap).",
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
    max_connections_per_client: int,
    asn_database: str | None,
) -> None:
    """Run the control helper: measures URLs from this (uncensored) side for probes.

    Speaks OONI's oohelperd protocol (POST / or /api/v1/control, GET /health); see
    docs/control-protocol.md. Refuses targets in private or bogon ranges unless told otherwise.
    """
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
    asyncio.run(serve_helper(settings, host, port,
                             max_connections_per_client=max_connections_per_client))
