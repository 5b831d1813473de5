"""Real traffic shaping for the lab's throttling policies: one tc htb class on `lo` per lab.

The front (the lab's DPI box) reads the SNI or Host of each connection and, for a shaped one,
sets SO_PRIORITY on the server's socket to this lab's class: htb puts a packet whose priority
names one of its classes in that class, so no tc filter (and no cls_fw module) is needed. Every
other packet (other labs', other helpers', the rest of this lab's) has no such priority and is
sent unshaped: `default 0` lets unclassified traffic through at full speed.
"""

from __future__ import annotations

import asyncio
import shutil

# The htb qdisc on lo that every lab shares; a lab's class minor comes from its /24.
# Below 0x8000: SO_PRIORITY is a signed int, and the major sits in its upper half.
ROOT_MAJOR = 0x7B10
DEVICE = "lo"
# 800 kbit/s: 100 kB/s, about a thousandth of loopback's rate, and 64 kB in under a second.
SHAPED_RATE = "800kbit"
SHAPED_BURST = "16k"


class ShapingUnavailable(RuntimeError):
    """tc is missing or refuses us; the throttling policies cannot be had."""


def class_minor(prefix: str) -> int:
    """This lab's htb class number, unique per /24 (127.a.b with a in 64..250)."""
    _, a, b = (int(part) for part in prefix.split("."))
    return (a - 64) * 255 + b + 1


def socket_priority(prefix: str) -> int:
    """The SO_PRIORITY value that puts a socket's packets in this lab's shaped class."""
    return (ROOT_MAJOR << 16) | class_minor(prefix)


async def _run_tc(*arguments: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        "tc", *arguments, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    output, errors = await process.communicate()
    text = (output + errors).decode(errors="replace").strip()
    return process.returncode or 0, text


class Shaper:
    """Owns this lab's class under the shared root; `install` adds it, `remove` takes it away."""

    def __init__(self, prefix: str) -> None:
        self.classid = f"{ROOT_MAJOR:x}:{class_minor(prefix):x}"
        self.priority = socket_priority(prefix)
        self.unavailable_reason: str | None = None
        self._installed = False
        self._lock = asyncio.Lock()

    @property
    def installed(self) -> bool:
        return self._installed

    @property
    def available(self) -> bool:
        return self.unavailable_reason is None

    def check(self) -> None:
        """At lab start: can tc be had? Nothing is installed until a connection is shaped, so a
        lab that shapes nothing leaves `lo` as it found it (benchmarks run on a bare `lo`)."""
        if shutil.which("tc") is None:
            self.unavailable_reason = "lab: throttling policies unavailable: tc is not installed"
            raise ShapingUnavailable(self.unavailable_reason)

    async def ensure_installed(self) -> bool:
        """Install the class on first use (once, whoever asks first); False if tc refused."""
        async with self._lock:
            if not self._installed and self.unavailable_reason is None:
                try:
                    await self.install()
                except ShapingUnavailable:
                    return False
        return self._installed

    async def install(self) -> None:
        if self._installed:
            return
        if self.unavailable_reason is not None:
            raise ShapingUnavailable(self.unavailable_reason)
        if shutil.which("tc") is None:
            self.unavailable_reason = "lab: throttling policies unavailable: tc is not installed"
            raise ShapingUnavailable(self.unavailable_reason)
        root = f"{ROOT_MAJOR:x}:"
        _, shown = await _run_tc("qdisc", "show", "dev", DEVICE)
        if f"htb {root}" not in shown:
            code, errors = await _run_tc(
                "qdisc", "add", "dev", DEVICE, "root", "handle", root, "htb", "default", "0"
            )
            if code != 0:
                self.unavailable_reason = (
                    f"lab: throttling policies unavailable: tc refused a root htb on {DEVICE}: {errors}"
                )
                raise ShapingUnavailable(self.unavailable_reason)
        code, errors = await _run_tc(
            "class", "replace", "dev", DEVICE, "parent", root, "classid", self.classid,
            "htb", "rate", SHAPED_RATE, "burst", SHAPED_BURST,
        )  # fmt: skip
        if code != 0:
            self.unavailable_reason = f"lab: throttling policies unavailable: tc refused a class: {errors}"
            raise ShapingUnavailable(self.unavailable_reason)
        self._installed = True

    async def remove(self) -> None:
        """Delete this lab's class, and the root qdisc when no other lab has one left."""
        if not self._installed:
            return
        self._installed = False
        await _run_tc("class", "del", "dev", DEVICE, "classid", self.classid)
        _, classes = await _run_tc("class", "show", "dev", DEVICE)
        if f"htb {ROOT_MAJOR:x}:" not in classes:
            await _run_tc("qdisc", "del", "dev", DEVICE, "root", "handle", f"{ROOT_MAJOR:x}:")
