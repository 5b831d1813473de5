"""The run service's stop on SIGTERM/SIGINT: monitor.signals.ShutdownRequest, shared with the servers."""

from monitor.signals import STOP_SIGNALS, ShutdownRequest

__all__ = ["STOP_SIGNALS", "ShutdownRequest"]
