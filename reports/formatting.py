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


__all__ = ["evidence_path", "format_share", "verdict_class", "when"]
