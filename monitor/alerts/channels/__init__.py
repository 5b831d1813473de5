"""Alert channels: each sends one alert or one digest, and raises TransportError when it cannot."""

from monitor.alerts.channels.base import Channel, TransportError

__all__ = ["Channel", "TransportError"]
