"""Alerts on confirmed changes: rules and incidents (pure), tables, channels, delivery, metrics."""
