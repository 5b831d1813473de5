"""Describe an X.509 certificate (DER) as the plain dict a measurement records; pure."""

from __future__ import annotations

import base64
import datetime
import functools
import hashlib
from collections.abc import Callable

from cryptography import x509

from probes.measurement_types import CertificateDescription, PeerCertificate

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_DER_SEQUENCE = 0x30
_DER_VERSION = 0xA0  # TBSCertificate's [0] EXPLICIT version
# Distinct names (DER) whose RFC 4514 text is remembered: issuers, mostly.
NAME_MEMO_SIZE = 4096


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
        issuer_der, subject_der = _name_ders(der)
        description["subject"] = _name_text(subject_der, lambda: certificate.subject)
        description["issuer"] = _name_text(issuer_der, lambda: certificate.issuer)
        description["sans"] = subject_alternative_names(certificate)
        description["not_before"] = _utc_text(certificate.not_valid_before_utc)
        description["not_after"] = _utc_text(certificate.not_valid_after_utc)
    except ValueError as error:
        # A middlebox may send garbage; the fingerprints still identify it.
        description["parse_error"] = str(error)
    return description


# Most certificates' issuer was seen before, as the issuer of another leaf or as an
# intermediate's subject: building cryptography's Name and its text is ~9 µs, so the text is
# remembered by the name's DER (from which cryptography parses it: a pure function).
_name_texts: dict[bytes, str] = {}


def _name_text(name_der: bytes | None, parsed_name: Callable[[], x509.Name]) -> str:
    text = _name_texts.get(name_der) if name_der is not None else None
    if text is None:
        text = parsed_name().rfc4514_string()  # a ValueError here is the certificate's
        if name_der is not None:
            if len(_name_texts) >= NAME_MEMO_SIZE:
                del _name_texts[next(iter(_name_texts))]  # the oldest
            _name_texts[name_der] = text
    return text


def _name_ders(der: bytes) -> tuple[bytes | None, bytes | None]:
    """The issuer's and the subject's DER in a certificate cryptography loaded (strict DER)."""
    try:
        tbs = _element(der, _element(der, 0)[1])[1]  # Certificate, then TBSCertificate's content
        tag, _start, end = _element(der, tbs)
        offset = end if tag == _DER_VERSION else tbs
        offset = _element(der, _element(der, offset)[2])[2]  # past serial and signature
        issuer_end = _element(der, offset)[2]
        subject_start = _element(der, issuer_end)[2]  # past validity
        subject_end = _element(der, subject_start)[2]
    except IndexError:
        return None, None
    if der[offset] != _DER_SEQUENCE or der[subject_start] != _DER_SEQUENCE:
        return None, None
    return der[offset:issuer_end], der[subject_start:subject_end]


def _element(der: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, content start, end) of the DER element at offset."""
    tag, length = der[offset], der[offset + 1]
    start = offset + 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(der[start : start + size], "big")
        start += size
    return tag, start, start + length


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
