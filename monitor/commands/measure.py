"""`blockmon measure`: measure URLs now and print one OONI measurement per line on stdout."""

from __future__ import annotations

import asyncio
import csv
import ipaddress
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import click

from monitor.commands.options import check_ca_file_option, load_asn_database_option
from probes.dns import parse_resolver
from probes.errors import InvalidInput
from probes.measurement_types import Measurement
from probes.options import ProbeIdentity, ProbeOptions


@dataclass(frozen=True, slots=True)
class LabFlags:
    """The flags a lab info file fills in for a probe at the lab's censored vantage."""

    resolver: str
    source_address: str
    ca_file: str
    public_range: str


def load_lab_flags(path: Path) -> LabFlags:
    """Read the LabInfo JSON that `blockmon lab --info-file` writes; errors name file and key."""
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise click.UsageError(f"--lab {path}: cannot read: {error.strerror}") from None
    except ValueError as error:
        raise click.UsageError(f"--lab {path}: not JSON: {error}") from None
    keys = {"censored_resolver": "resolver", "censored_source": "source_address",
            "ca_file": "ca_file", "public_range": "public_range"}
    values = {}
    for key, field_name in keys.items():
        value = data.get(key) if isinstance(data, dict) else None
        if not isinstance(value, str) or not value:
            raise click.UsageError(f"--lab {path}: key {key!r} missing or not a string")
        values[field_name] = value
    return LabFlags(**values)


def read_input_file(path: Path) -> list[tuple[str, str]]:
    """(URL, "FILE:LINE") pairs from a text file (one URL per line, # comments) or a Citizen Lab
    CSV (its `url` column), so an error about a URL can say where it came from."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise click.UsageError(f"--input-file {path}: cannot read: {reason}") from None
    lines = text.splitlines()
    if lines and lines[0].lower().startswith("url,"):
        reader = csv.DictReader(lines)
        return [((row.get("url") or "").strip(), f"{path}:{reader.line_num}")
                for row in reader if (row.get("url") or "").strip()]
    return [(line.strip(), f"{path}:{number}") for number, line in enumerate(lines, start=1)
            if line.strip() and not line.lstrip().startswith("#")]


def _check_ip(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise click.BadParameter(f"not an IP address: {value!r}", param_hint=option) from None


def _check_helper_url(value: str | None) -> str | None:
    # A bad --helper would otherwise only show as control_failure on every measurement.
    if value is None:
        return None
    try:
        parts = urlsplit(value)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a port that is no number or out of range
        valid = False
    if not valid:
        raise click.BadParameter(f"not an http(s) URL: {value!r}", param_hint="--helper")
    return value


def _is_http_url(value: str) -> bool:
    try:
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:
        return False


def _check_range(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=False))
    except ValueError:
        raise click.BadParameter(f"not a CIDR range: {value!r}", param_hint="--lab-public-range") from None


@click.command("measure")
@click.argument("urls", nargs=-1)
@click.option("--input-file", "input_files", multiple=True, type=click.Path(path_type=Path),
              help="File of URLs, one per line (# comments), or a Citizen Lab CSV. Repeatable.")
@click.option("--helper", "helper_url", metavar="URL", envvar="BLOCKMON_HELPER_URL",
              help="Control helper URL (oohelperd-shaped). Env: BLOCKMON_HELPER_URL.")
@click.option("--helper-token", metavar="TOKEN", envvar="BLOCKMON_HELPER_TOKEN",
              help="Bearer token for the helper. Env: BLOCKMON_HELPER_TOKEN.")
@click.option("--resolver", "resolvers", multiple=True, metavar="IP[:PORT]",
              help="DNS resolver to ask instead of /etc/resolv.conf's. Repeatable.")
@click.option("--concurrency", type=click.IntRange(1, 2000), default=20, show_default=True,
              help="URLs measured at once.")
@click.option("--probe-cc", default="ZZ", show_default=True, help="Country code recorded as probe_cc.")
@click.option("--probe-asn", default="AS0", show_default=True, help="Network recorded as probe_asn.")
@click.option("--probe-network-name", default="", help="Network name recorded as probe_network_name.")
@click.option("--source-address", metavar="IP", help="Local address to send probe traffic from.")
@click.option("--ca-file", type=click.Path(dir_okay=False, path_type=Path),
              help="CA bundle (PEM) to verify TLS against instead of the system store.")
@click.option("--lab-public-range", "lab_public_ranges", multiple=True, metavar="CIDR",
              help="Range that counts as public although it is a bogon (the lab). Repeatable.")
@click.option("--lab", "lab_file", type=click.Path(dir_okay=False, path_type=Path), metavar="LABINFO.json",
              help="Lab info file: fills --resolver, --source-address, --ca-file and --lab-public-range "
                   "for the lab's censored vantage.")
@click.option("--asn-database", metavar="PATH", type=click.Path(dir_okay=False),
              envvar="BLOCKMON_PROBE_ASN_DATABASE",
              help="iptoasn.com TSV (ip2asn-combined.tsv.gz): annotate DNS answers with their AS, so "
                   "answers in the control's AS count as consistent (docs/asn.md).")
@click.option("--throughput-url", metavar="URL",
              help="A large resource of the (single) URL's site to measure the rate on (docs/outcomes.md).")
@click.option("--baseline-url", "baseline_urls", multiple=True, metavar="URL",
              help="A neutral large resource on this network: the rate baseline that tells throttling "
                   "from a slow network. Repeatable.")
def measure(
    urls: tuple[str, ...],
    input_files: tuple[Path, ...],
    helper_url: str | None,
    helper_token: str | None,
    resolvers: tuple[str, ...],
    concurrency: int,
    probe_cc: str,
    probe_asn: str,
    probe_network_name: str,
    source_address: str | None,
    ca_file: Path | None,
    lab_public_ranges: tuple[str, ...],
    lab_file: Path | None,
    asn_database: str | None,
    throughput_url: str | None,
    baseline_urls: tuple[str, ...],
) -> None:
    """Measure each URL (Web Connectivity) and print one JSON measurement per line."""
    all_urls = list(urls)
    origins: dict[str, str] = {}
    for path in input_files:
        try:
            entries = read_input_file(path)
        except click.UsageError as error:
            click.echo(f"error: {error.message}", err=True)
            continue
        for url, origin in entries:
            all_urls.append(url)
            origins.setdefault(url, origin)
    if not all_urls:
        raise click.UsageError("no URLs to measure (give URLs or --input-file)")
    if throughput_url is not None and len(all_urls) != 1:
        raise click.BadParameter("goes with exactly one URL to measure", param_hint="--throughput-url")
    for rate_url, hint in [(throughput_url, "--throughput-url"), *((u, "--baseline-url") for u in baseline_urls)]:
        if rate_url is not None and not _is_http_url(rate_url):
            raise click.BadParameter(f"not an http(s) URL: {rate_url!r}", param_hint=hint)
    ranges = tuple(_check_range(r) for r in lab_public_ranges)
    if lab_file is not None:
        lab = load_lab_flags(lab_file)
        resolvers = resolvers or (lab.resolver,)
        source_address = source_address or lab.source_address
        ca_file = ca_file or Path(lab.ca_file)
        ranges = ranges or (lab.public_range,)
    for resolver in resolvers:
        try:
            parse_resolver(resolver)
        except InvalidInput as error:
            raise click.BadParameter(str(error), param_hint="--resolver") from None
    if ca_file is not None and not ca_file.is_file():
        raise click.BadParameter(f"no such file: {ca_file}", param_hint="--ca-file")
    if ca_file is not None:
        check_ca_file_option(str(ca_file))
    if asn_database:
        load_asn_database_option(asn_database)
    options = ProbeOptions(
        identity=ProbeIdentity(probe_cc=probe_cc, probe_asn=probe_asn, probe_network_name=probe_network_name),
        resolvers=resolvers,
        helper_url=_check_helper_url(helper_url),
        helper_token=helper_token,
        source_address=_check_ip(source_address, "--source-address"),
        lab_public_ranges=ranges,
        ca_file=str(ca_file) if ca_file else None,
        asn_database=asn_database or None,
        throughput_baselines=baseline_urls,
        throughput_urls=((all_urls[0], throughput_url),) if throughput_url else (),
    )
    measured = asyncio.run(_measure_all(all_urls, options, concurrency, origins))
    click.echo(f"measured {measured} of {len(all_urls)} URLs", err=True)
    if measured == 0:
        sys.exit(1)


async def _measure_all(urls: list[str], options: ProbeOptions, concurrency: int,
                       origins: dict[str, str]) -> int:
    from probes.measure import measure_many  # aiohttp and the analysis load only when measuring

    def print_result(url: str, measurement: Measurement | None, error: str | None) -> None:
        if measurement is None:
            where = f"{origins[url]}: " if url in origins else ""
            click.echo(f"error: {where}{error}", err=True)
            return
        sys.stdout.write(json.dumps(measurement, ensure_ascii=False, separators=(",", ":")) + "\n")
        sys.stdout.flush()
        keys = measurement["test_keys"]
        click.echo(f"{url}: blocking={keys.get('blocking')} method={keys.get('blocking_method')}", err=True)

    return await measure_many(urls, options, concurrency, print_result)
