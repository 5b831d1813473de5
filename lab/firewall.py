"""IP blocking for the lab (tcp.reset, tcp.timeout): an nftables table of the lab's own."""

from __future__ import annotations

import asyncio
import shutil


class FirewallUnavailable(RuntimeError):
    """nft is missing or refuses us; tcp.* policies cannot be had."""


def table_name(prefix: str) -> str:
    _, a, b = prefix.split(".")
    return f"blockmon_lab_{a}_{b}"


def build_ruleset(table: str, censored_source: str, verdicts: dict[str, str]) -> str:
    """An nft script that replaces the whole table atomically: declare, delete, recreate."""
    rules = "".join(
        f"    ip saddr {censored_source} ip daddr {address} meta l4proto tcp {verdict}\n"
        for address, verdict in sorted(verdicts.items())
    )
    return (
        f"table inet {table} {{}}\n"
        f"delete table inet {table}\n"
        f"table inet {table} {{\n"
        f"  chain input {{\n"
        f"    type filter hook input priority filter; policy accept;\n"
        f"{rules}"
        f"  }}\n"
        f"}}\n"
    )


async def _run_nft(*arguments: str, script: str | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "nft",
        *arguments,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, errors = await process.communicate(script.encode() if script is not None else None)
    return process.returncode or 0, errors.decode(errors="replace").strip()


class Firewall:
    """Owns one table; `apply` rewrites it, `remove` deletes it."""

    def __init__(self, prefix: str, censored_source: str) -> None:
        self.table = table_name(prefix)
        self._censored_source = censored_source
        self.unavailable_reason: str | None = None
        self._installed = False

    async def apply(self, verdicts: dict[str, str]) -> None:
        if self.unavailable_reason is not None:
            raise FirewallUnavailable(self.unavailable_reason)
        if shutil.which("nft") is None:
            self.unavailable_reason = (
                "lab: tcp.* policies unavailable: nft (nftables) is not installed"
            )
            raise FirewallUnavailable(self.unavailable_reason)
        code, errors = await _run_nft(
            "-f", "-", script=build_ruleset(self.table, self._censored_source, verdicts)
        )
        if code != 0:
            self.unavailable_reason = (
                f"lab: tcp.* policies unavailable: nft refused the ruleset: {errors}"
            )
            raise FirewallUnavailable(self.unavailable_reason)
        self._installed = True

    async def remove(self) -> None:
        if self._installed:
            await _run_nft("delete", "table", "inet", self.table)
            self._installed = False
