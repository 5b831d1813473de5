"""Checks of the files several commands take (CA bundle, AS database), each failing in one line."""

from __future__ import annotations

import ssl

import click

from monitor.store.rows import store_time
from probes.asn import AsnDatabaseError, open_asn_database


def load_asn_database_option(path: str, option: str = "--asn-database") -> None:
    """Load (and cache for the process) the AS database now, so a bad file is one error line."""
    try:
        open_asn_database(path)
    except AsnDatabaseError as error:
        raise click.BadParameter(str(error), param_hint=option) from None


def check_ca_file_option(path: str, option: str = "--ca-file") -> None:
    """Load the CA bundle once now, so a file that is no PEM bundle is one error line, not a
    traceback at start (helper) or on every TLS step (measure)."""
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError) as error:
        reason = getattr(error, "reason", None) or getattr(error, "strerror", None) or error
        raise click.BadParameter(f"{path}: not a readable PEM CA bundle ({reason})", param_hint=option) from None


def parse_time_option(_ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """click callback: a --since/--until time in the store's form, or one error naming the option."""
    if value is None:
        return None
    try:
        return store_time(value)
    except ValueError as error:
        raise click.BadParameter(str(error), param=param) from None
