"""OONI's networks as blockmon vantages (ooni:<cc>:<asn>); pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

SOURCE_PREFIX = "ooni:"


def vantage_of(measurement: Mapping[str, Any]) -> str:
    """OONI's network as a blockmon vantage: ooni:<cc>:<asn>."""
    cc = measurement.get("probe_cc") or "ZZ"
    asn = measurement.get("probe_asn") or "AS0"
    return f"{SOURCE_PREFIX}{cc}:{asn}"


def is_ooni_vantage(vantage_id: str | None) -> bool:
    return bool(vantage_id) and str(vantage_id).startswith(SOURCE_PREFIX)
