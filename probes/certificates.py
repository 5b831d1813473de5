"""Describe an X.509 certificate (DER) as the plain dict a measurement records; pure."""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib

from cryptography import x509

from probes.measurement_types import CertificateDescription, PeerCertificate

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def describe_certificate(der: bytes) -> CertificateDescription:
    """Subject, issuer, SANs, validity and fingerprints; an unparsable blob is said so, not raised."""
    description = _cached_description(der)
    return {**description, "sans": list(description["sans"])}


# The same few chains come back on most handshakes, and parsing one costs ~40 µs: a pure
# function of the bytes, so remembered per DER (a copy goes out, the cached one stays intact).
@functools.lru_cache(maxsize=2048)
def _cached_description(der: bytes) -> CertificateDescription:
    description: CertificateDescription = {
        "subject": None,
        "issuer": None,
        "sans": [],
        "not_before": None,
        "not_after": None,
        "sha256": hashlib.sha256(der).hexdigest(),
        "sha1": hashlib.sha1(der).hexdigest(),
    }
    try:
        certificate = x509.load_der_x509_certificate(der)
        description["subject"] = certificate.subject.rfc4514_string()
        description["issuer"] = certificate.issuer.rfc4514_string()
        description["sans"] = subject_alternative_names(certificate)
        description["not_before"] = _utc_text(certificate.not_valid_before_utc)
        description["not_after"] = _utc_text(certificate.not_valid_after_utc)
    except ValueError as error:
        # A middlebox may send garbage; the fingerprints still identify it.
        description["parse_error"] = str(error)
    return description


def _utc_text(moment: datetime.datetime) -> str:
    # isoformat is several times faster than strftime; strftime leaves years below 1000 unpadded.
    if moment.year < 1000:
        return moment.strftime(_TIME_FORMAT)
    return moment.isoformat()[:19] + "Z"


def subject_alternative_names(certificate: x509.Certificate) -> list[str]:
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    names: list[str] = list(extension.value.get_values_for_type(x509.DNSName))
    names += [str(ip) for ip in extension.value.get_values_for_type(x509.IPAddress)]
    return names


def peer_certificate_entry(der: bytes) -> PeerCertificate:
    """OONI's peer_certificates[] item (df-006): base64 DER."""
    return {"format": "base64", "data": base64.b64encode(der).decode("ascii")}
