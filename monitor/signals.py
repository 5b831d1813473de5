"""Turns SIGTERM and SIGINT into an asyncio event, so a service or a server stops between writes."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class ShutdownRequest:
    """The first signal asks for a graceful stop; a second one asks to stop without grace."""

    def __init__(self, *, on_first: Callable[[], None] | None = None, quiet: bool = False) -> None:
        self.requested = asyncio.Event()
        # The warnings speak of in-flight measurements: `blockmon run`'s; a server stops quietly.
        self.quiet = quiet
        self.signal_count = 0
        self.signal_name: str | None = None
        self._on_first = on_first
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def forced(self) -> bool:
        return self.signal_count > 1

    def install(self) -> None:
        # Handlers run on the loop (not inside whatever code was interrupted), so a signal can
        # never land in the middle of a database write.
        if threading.current_thread() is not threading.main_thread():
            return  # Python delivers signals to the main thread only; nothing to listen for
        self._loop = asyncio.get_running_loop()
        for signal_number in STOP_SIGNALS:
            self._loop.add_signal_handler(signal_number, self._handle, signal_number)

    def remove(self) -> None:
        if self._loop is None:
            return
        for signal_number in STOP_SIGNALS:
            self._loop.remove_signal_handler(signal_number)
        self._loop = None

    def trigger(self, name: str = "request") -> None:
        """Asks for a stop from code (the demo's end, tests)."""
        self.signal_count += 1
        if self.signal_count == 1:
            self.signal_name = name
            self.requested.set()
            if self._on_first is not None:
                self._on_first()

    def _handle(self, signal_number: int) -> None:
        name = signal.Signals(signal_number).name
        if self.quiet:
            self.trigger(name)
            return
        if self.signal_count == 0:
            log.warning("%s received: finishing in-flight measurements, starting no new ones", name)
        else:
            log.warning("%s received again: cancelling in-flight measurements", name)
        self.trigger(name)

    async def wait(self) -> None:
        await self.requested.wait()
