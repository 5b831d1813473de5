"""Pure: one stored measurement as a reader sees it (`blockmon show`, /measurements/<uid>)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reports.dashboard.evidence import ObservationPair, compare_observations

# Characters of the response body quoted: enough for a blockpage's notice, never a whole page.
BODY_EXCERPT = 400
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True, slots=True)
class CertificateRow:
    position: int  # 0 = the server's own certificate
    subject: str
    issuer: str
    sha256: str
    note: str  # "the interception CA ..." when this is the certificate that matched


@dataclass(frozen=True, slots=True)
class SniRetry:
    server_name: str  # "(no SNI)" when the retry sent none
    address: str
    result: str


@dataclass(frozen=True, slots=True)
class MeasurementView:
    uid: str
    url: str
    measured_at: str
    vantage_id: str
    place: str  # "KZ AS9198 JSC Kazakhtelecom"
    target_id: str
    list_name: str
    verdict: str  # "blocked (tls.mitm)", "accessible", "down", "unknown"
    why: tuple[str, ...]  # the rule that decided, in words
    observations: tuple[ObservationPair, ...]
    certificates: tuple[CertificateRow, ...]
    interception_ca: str | None
    fingerprint: Mapping[str, Any] | None
    body_excerpt: str | None
    body_length: int | None
    body_sha256: str | None
    sni_retries: tuple[SniRetry, ...]
    sni_filtering: bool | None


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _objects(value: Any) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def decide_verdict_words(test_keys: Mapping[str, Any]) -> str:
    """blocked (method) / accessible / down / unknown: the report's outcome rule."""
    blocking, method = test_keys.get("blocking"), test_keys.get("blocking_method")
    if blocking is None:
        return "unknown (no usable control)"
    if blocking is not False:
        return f"blocked ({method or blocking})"
    return "accessible" if test_keys.get("accessible") is True else \
        "down (fails for the control too)"


def _why(test_keys: Mapping[str, Any]) -> tuple[str, ...]:
    notes = [str(note) for note in test_keys.get("x_analysis_notes") or [] if note]
    if notes:
        return tuple(notes)
    if test_keys.get("control_failure"):
        return (f"the control failed ({test_keys['control_failure']}): nothing to compare with",)
    blocking = test_keys.get("blocking")
    if blocking is False:
        return ("what the probe saw matches the control",) if test_keys.get("accessible") \
            else ("the site fails for the control as well",)
    return (f"test_keys.blocking is {blocking!r}",)


def _certificates(test_keys: Mapping[str, Any],
                  fingerprint: Mapping[str, Any]) -> tuple[CertificateRow, ...]:
    ca_issuer = fingerprint.get("issuer") if fingerprint.get("kind") == "interception_ca" \
        else None
    for handshake in _objects(test_keys.get("tls_handshakes")):
        chain = _objects(handshake.get("certificate_chain"))
        if not chain or not handshake.get("server_name"):
            continue  # an SNI retry's chain is the same server's; the first one is shown
        rows = []
        for position, certificate in enumerate(chain):
            subject, issuer = str(certificate.get("subject") or "?"), \
                str(certificate.get("issuer") or "?")
            note = ""
            if ca_issuer and issuer == ca_issuer:
                note = f"issued by the interception CA {fingerprint.get('name') or ca_issuer}"
            elif ca_issuer and subject == ca_issuer:
                note = "the interception CA itself"
            rows.append(CertificateRow(position, subject, issuer,
                                       str(certificate.get("sha256") or ""), note))
        return tuple(rows)
    return ()


def _body(test_keys: Mapping[str, Any]) -> tuple[str | None, int | None, str | None]:
    requests = _objects(test_keys.get("requests"))
    response = _object(requests[0].get("response")) if requests else {}
    body = response.get("body")
    if not isinstance(body, str) or not body:
        return None, None, None
    excerpt = _SPACES.sub(" ", body).strip()
    if len(excerpt) > BODY_EXCERPT:
        excerpt = excerpt[:BODY_EXCERPT] + "…"
    length = response.get("body_length")
    return excerpt, int(length) if isinstance(length, int) else len(body.encode()), \
        hashlib.sha256(body.encode()).hexdigest()


def build_measurement_view(measurement: Mapping[str, Any]) -> MeasurementView:
    """Everything `show` and the measurement page print, from the stored OONI JSON alone."""
    test_keys = _object(measurement.get("test_keys"))
    annotations = _object(measurement.get("annotations"))
    fingerprint = _object(test_keys.get("fingerprint"))
    excerpt, length, digest = _body(test_keys)
    place = " ".join(str(part) for part in (measurement.get("probe_cc"),
                                            measurement.get("probe_asn"),
                                            measurement.get("probe_network_name")) if part)
    sni = test_keys.get("sni_filtering")
    return MeasurementView(
        uid=str(measurement.get("measurement_uid") or ""),
        url=str(measurement.get("input") or ""),
        measured_at=str(measurement.get("measurement_start_time") or ""),
        vantage_id=str(annotations.get("vantage_id") or ""),
        place=place, target_id=str(annotations.get("target_id") or ""),
        list_name=str(annotations.get("list") or ""),
        verdict=decide_verdict_words(test_keys), why=_why(test_keys),
        observations=tuple(compare_observations(measurement)),
        certificates=_certificates(test_keys, fingerprint),
        interception_ca=str(fingerprint.get("name") or fingerprint.get("issuer"))
        if fingerprint.get("kind") == "interception_ca" else None,
        fingerprint=fingerprint or None,
        body_excerpt=excerpt, body_length=length, body_sha256=digest,
        sni_retries=tuple(SniRetry(str(retry.get("server_name") or "(no SNI)"),
                                   str(retry.get("address") or "?"),
                                   str(retry.get("failure") or "handshake ok"))
                          for retry in _objects(test_keys.get("sni_differential"))),
        sni_filtering=sni if isinstance(sni, bool) else None)


def render_measurement_text(view: MeasurementView) -> str:
    """The view as terminal text, one section per question."""
    lines = [f"Measurement {view.uid}",
             f"  URL       {view.url}",
             f"  when      {view.measured_at} UTC",
             f"  vantage   {view.vantage_id} ({view.place})",
             f"  target    {view.target_id or '-'} (list {view.list_name or '-'})",
             f"  verdict   {view.verdict}", "", "Why:"]
    lines += [f"  - {reason}" for reason in view.why]
    width = max([len(pair.probe) for pair in view.observations] + [10])
    width = min(width, 60)
    lines += ["", f"  {'STEP':<5} {'PROBE SAW':<{width}}  CONTROL SAW"]
    lines += [f"  {pair.step:<5} {pair.probe:<{width}}  {pair.control}"
              for pair in view.observations]
    if view.certificates:
        lines += ["", "Certificate chain:"]
        for row in view.certificates:
            lines.append(f"  #{row.position} {row.subject}  issued by {row.issuer}"
                         + (f"  <- {row.note}" if row.note else ""))
    if view.interception_ca:
        lines.append(f"  interception CA: {view.interception_ca}")
    if view.fingerprint:
        lines += ["", f"Fingerprint: {view.fingerprint.get('id')} "
                      f"({view.fingerprint.get('kind')}): {view.fingerprint.get('name')}",
                  f"  matched on: {view.fingerprint.get('evidence')}"]
    if view.body_excerpt:
        lines += ["", f"Body ({view.body_length} bytes, sha256 {view.body_sha256}):",
                  f"  {view.body_excerpt}"]
    if view.sni_retries:
        lines += ["", "SNI retries (same address, other server names):"]
        lines += [f"  {retry.server_name} at {retry.address}: {retry.result}"
                  for retry in view.sni_retries]
        if view.sni_filtering:
            lines.append("  -> the real name fails where another gets through: SNI filtering")
    return "\n".join(lines)
