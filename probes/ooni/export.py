"""Stored measurements as OONI's tools read them, also rows written before a format fix; pure."""

from __future__ import annotations

from typing import Any

# Names dnspython gave the rcodes blockmon wrote as text before 0.2 (df-002 has the integer).
_RCODE_NUMBERS = {"NOERROR": 0, "FORMERR": 1, "SERVFAIL": 2, "NXDOMAIN": 3, "NOTIMP": 4,
                  "REFUSED": 5, "YXDOMAIN": 6, "YXRRSET": 7, "NXRRSET": 8, "NOTAUTH": 9,
                  "NOTZONE": 10}


def needs_repair(stored_json: str) -> bool:
    """Cheap test on the stored text: only old rows carry a textual rcode."""
    return '"rcode":"' in stored_json or '"rcode": "' in stored_json


def repair_measurement(measurement: dict[str, Any]) -> dict[str, Any]:
    """The measurement with each queries[].rcode as OONI's integer (None when unknown); in place."""
    test_keys = measurement.get("test_keys")
    if not isinstance(test_keys, dict):
        return measurement
    for key in ("queries", "x_public_queries"):
        for query in test_keys.get(key) or []:
            if isinstance(query, dict) and isinstance(query.get("rcode"), str):
                query["rcode"] = _RCODE_NUMBERS.get(query["rcode"].upper())
    return measurement
