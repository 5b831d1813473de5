"""`blockmon lab`: run the offline test network in the foreground until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import click

from lab import Lab, LabError, LabInfo
from lab.firewall import FirewallUnavailable


def _parse_pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, separator, item = value.partition("=")
        if not separator or not key or not item:
            raise click.BadParameter(f"expected NAME=VALUE, got {value!r}", param_hint=option)
        pairs[key] = item
    return pairs


def describe_flags(info: LabInfo, info_file: Path | None = None) -> str:
    """The flags that point a probe (censored vantage) and a helper (honest) at this lab."""
    common = f"--ca-file {info.ca_file} --lab-public-range {info.public_range}"
    shortcut = (
        [f"  or simply:                blockmon measure --lab {info_file} URL"] if info_file else []
    )
    return "\n".join(
        [
            f"blockmon lab running in {info.public_range} (Ctrl-C to stop)",
            f"  probe (censored vantage): --resolver {info.censored_resolver} "
            f"--source-address {info.censored_source} {common}",
            *shortcut,
            f"  control helper (honest):  --resolver {info.honest_resolver} {common}",
            f"  change a policy:          curl -X POST {info.control_url}/policy "
            """-d '{"hostname": "ok.lab.test", "policy": "tls.timeout"}'""",
            f"  hostnames: {len(info.hosts)} (e.g. ok.lab.test, tls-timeout.lab.test)",
        ]
    )


async def _run_until_signalled(lab: Lab, info_file: Path | None) -> None:
    # Not monitor.signals.ShutdownRequest: lab/ imports nothing of monitor/ (the lab is a test
    # network that stands alone), so it keeps this one small loop of its own.
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    async with lab:
        click.echo(describe_flags(lab.info, info_file))
        await stop.wait()


@click.command("lab")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the lab CA (lab-ca.pem) and certificates (default: a new temporary one).",
)
@click.option(
    "--info-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the LabInfo JSON here once the lab is up (and again after each policy change).",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    metavar="HOST=POLICY",
    help="Add a hostname with a policy (repeatable), e.g. www.azattyq.org=tls.timeout.",
)
@click.option(
    "--redirect",
    "redirects",
    multiple=True,
    metavar="HOST=URL",
    help="Make a hostname answer 301 to URL (repeatable).",
)
@click.option(
    "--bulk-sites",
    type=click.IntRange(min=0, max=5000),
    default=0,
    show_default=True,
    help="Add N honest sites site1..siteN.bulk.lab.test (for benchmarks).",
)
def lab(
    workdir: Path | None,
    info_file: Path | None,
    hosts: tuple[str, ...],
    redirects: tuple[str, ...],
    bulk_sites: int,
) -> None:
    """Run the offline lab: honest and censored resolvers, sites, blockpage and middleboxes.

    Needs root (ports 53/80/443 on a /24 of 127.0.0.0/8) and nftables for tcp.* policies.
    See docs/lab.md for the topology and the policy table.
    """
    try:
        instance = Lab(
            workdir,
            extra_hosts=_parse_pairs(hosts, "--host"),
            redirects=_parse_pairs(redirects, "--redirect"),
            bulk_sites=bulk_sites,
            info_file=info_file,
        )
        asyncio.run(_run_until_signalled(instance, info_file))
    except (LabError, ValueError, FirewallUnavailable) as error:
        raise click.ClickException(str(error)) from None
