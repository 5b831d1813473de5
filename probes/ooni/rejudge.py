"""An OONI measurement as blockmon stores it: re-judged, OONI's verdict kept beside; pure."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from probes.analysis import analyze
from probes.analysis_observe import copy_json
from probes.fingerprints_match import FingerprintDB
from probes.ooni.normalise import normalise
from probes.ooni.vantage import vantage_of
from targets.model import Target

# The verdict keys of OONI's own probe, kept under test_keys.x_ooni_verdict.
OONI_VERDICT_KEYS = ("blocking", "accessible", "dns_consistency", "dns_experiment_failure",
                     "http_experiment_failure", "body_length_match", "status_code_match",
                     "headers_match", "title_match")


class NotImportable(ValueError):
    """A measurement blockmon cannot judge (another test, no input); the message says why."""


@dataclass(frozen=True, slots=True)
class MatchedTarget:
    target_id: str
    list_name: str
    how: str  # "url" or "domain"


def uid_of(measurement: Mapping[str, Any]) -> str:
    """OONI's measurement_uid; measurements from before uids existed get a stable one."""
    uid = measurement.get("measurement_uid")
    if uid:
        return str(uid)
    # The whole measurement, canonically: the same measurement imported twice gets the same uid,
    # two that merely share a report, input and second (OONI's QA runs) do not.
    basis = json.dumps(measurement, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "ooni_" + hashlib.sha256(basis.encode("utf-8")).hexdigest()[:32]


def _domain(url: str) -> str:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return ""
    return host.removeprefix("www.").casefold()


def match_target(url: str, targets: tuple[Target, ...] | list[Target]) -> MatchedTarget | None:
    """The target measuring this URL, else the target whose lineage (former, current, mirror
    domains: fergananews.com and its successors) holds its domain."""
    wanted = url.rstrip("/")
    for target in targets:
        if any(u.rstrip("/") == wanted for u in target.url_list()):
            return MatchedTarget(target.id, target.list_name, "url")
    domain = _domain(url)
    if not domain:
        return None
    for target in targets:
        if any(_domain(u) == domain for u in target.url_list()):
            return MatchedTarget(target.id, target.list_name, "domain")
    return None


def rejudge(
    measurement: Mapping[str, Any],
    targets: tuple[Target, ...] | list[Target] = (),
    *,
    fingerprints: FingerprintDB | None = None,
) -> dict[str, Any]:
    """The measurement to store: OONI's own, with blockmon's verdict in test_keys, OONI's verdict
    in test_keys.x_ooni_verdict, and annotations naming the vantage, target and source."""
    if measurement.get("test_name") != "web_connectivity":
        raise NotImportable(f"test {measurement.get('test_name')!r} is not web_connectivity")
    if not measurement.get("input") or not measurement.get("measurement_start_time"):
        raise NotImportable("no input or measurement_start_time")
    stored: dict[str, Any] = copy_json(dict(measurement))
    raw_keys = stored.get("test_keys")
    original: dict[str, Any] = raw_keys if isinstance(raw_keys, dict) else {}
    verdict = analyze(normalise(stored)["test_keys"], fingerprints=fingerprints)
    stored["measurement_uid"] = uid_of(measurement)
    stored["test_keys"] = {
        **original,
        **verdict.as_test_keys(),
        "x_ooni_verdict": {key: original.get(key) for key in OONI_VERDICT_KEYS},
    }
    annotations = dict(stored.get("annotations") or {})
    annotations.update({"vantage_id": vantage_of(measurement), "x_source": "ooni"})
    matched = match_target(str(measurement["input"]), targets)
    if matched is not None:
        annotations.update({"target_id": matched.target_id, "list": matched.list_name,
                            "x_target_match": matched.how})
    stored["annotations"] = annotations
    return stored
