"""Pure: how times, shares and verdicts read in every report format."""

from __future__ import annotations

from reports.build import format_share

VERDICT_CLASSES = {
    "still blocked": "blocked",
    "no longer blocked": "lifted",
    "never seen blocked": "open",
    "not measurable": "unknown",
}


def when(store_time: str | None) -> str:
    """'2026-11-03T00:00:00Z' -> '2026-11-03 00:00 UTC'; None -> '-'."""
    if not store_time:
        return "-"
    return f"{store_time[:10]} {store_time[11:16]} UTC"


def verdict_class(verdict: str) -> str:
    return VERDICT_CLASSES.get(verdict, "unknown")


def evidence_path(uid: str) -> str:
    """Where a measurement's JSON is written next to the report (relative link)."""
    return f"evidence/{uid}.json"


def format_rate(bytes_per_second: float | None) -> str:
    """82611.0 -> '661 kbit/s'; 1.5e8 -> '1200.0 Mbit/s'; None -> '-'."""
    if bytes_per_second is None:
        return "-"
    kilobits = bytes_per_second * 8 / 1000
    return f"{kilobits / 1000:.1f} Mbit/s" if kilobits >= 1000 else f"{kilobits:.0f} kbit/s"


__all__ = ["evidence_path", "format_rate", "format_share", "verdict_class", "when"]
