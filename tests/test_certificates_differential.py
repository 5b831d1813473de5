"""describe_certificate describes every certificate as the implementation before it did (issue 11).

Descriptions are stored and matched against interception fingerprints: a faster implementation
must give the same dict, parse errors included. The oracle below is the former code, copied."""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import json
from collections.abc import Callable

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from lab.certificates import issue_leaf, make_lab_root, make_rogue_authority
from probes.certificates import _cached_description, describe_certificate, subject_alternative_names
from tests.conftest import SHARED

OONI_REAL = SHARED / "data" / "ooni-real"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_DER = serialization.Encoding.DER


# -- the oracle: _cached_description before issue 11 (uncached; the SAN reader did not change)
def old_description(der: bytes) -> dict[str, object]:
    # The fields in the order the description keeps them (the stored JSON's order).
    hashes = [("sha256", hashlib.sha256(der).hexdigest()), ("sha1", hashlib.sha1(der).hexdigest())]
    try:
        certificate = x509.load_der_x509_certificate(der)
        fields: list[tuple[str, object]] = [
            ("subject", certificate.subject.rfc4514_string()),
            ("issuer", certificate.issuer.rfc4514_string()),
            ("sans", subject_alternative_names(certificate)),
            ("not_before", certificate.not_valid_before_utc.strftime(_TIME_FORMAT)),
            ("not_after", certificate.not_valid_after_utc.strftime(_TIME_FORMAT)),
        ]
    except ValueError as error:
        return _failed_description(der, hashes, error)
    return dict(fields + hashes)


def _failed_description(der: bytes, hashes: list[tuple[str, str]], error: ValueError) -> dict[str, object]:
    # The fields read before the failure stay, as the old code filled them in one by one.
    partial: dict[str, object] = {"subject": None, "issuer": None, "sans": [], "not_before": None,
                                  "not_after": None}
    for name, read in (("subject", lambda c: c.subject.rfc4514_string()),
                       ("issuer", lambda c: c.issuer.rfc4514_string()),
                       ("sans", subject_alternative_names),
                       ("not_before", lambda c: c.not_valid_before_utc.strftime(_TIME_FORMAT)),
                       ("not_after", lambda c: c.not_valid_after_utc.strftime(_TIME_FORMAT))):
        try:
            partial[name] = read(x509.load_der_x509_certificate(der))
        except ValueError:
            break
    return {**partial, **dict(hashes), "parse_error": str(error)}


def _outcome(describe: Callable[[bytes], object], der: bytes) -> object:
    # Not every refusal is a ValueError (cryptography's InvalidVersion is not): those are raised.
    try:
        return describe(der)
    except Exception as error:  # noqa: BLE001 - compared, not handled
        return type(error), str(error)


def _ordered(outcome: object) -> object:
    return list(outcome.items()) if isinstance(outcome, dict) else outcome


def _assert_as_before(der: bytes) -> None:
    expected = _outcome(old_description, der)
    # Twice, then through the cache: describing a certificate leaves nothing behind that changes it.
    # Compared as items, in order: the stored JSON keeps the description's order.
    for describe in (_cached_description.__wrapped__, _cached_description.__wrapped__, describe_certificate):
        assert _ordered(_outcome(describe, der)) == _ordered(expected)


# -- the lab's certificates, OONI's real ones, broken ones ---------------------------------------
def _lab_ders() -> list[bytes]:
    root, rogue = make_lab_root(), make_rogue_authority()
    ders = [root.certificate.public_bytes(_DER), rogue.certificate.public_bytes(_DER)]
    ders += [issue_leaf(root, f"site{n}.bulk.lab.test")[0].public_bytes(_DER) for n in range(5)]
    ders += [issue_leaf(rogue, "google.com", forged=True)[0].public_bytes(_DER)]
    return ders


def _real_ders() -> list[bytes]:
    ders: list[bytes] = []
    for path in sorted(OONI_REAL.glob("**/measurements.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            for handshake in (json.loads(line).get("test_keys") or {}).get("tls_handshakes") or []:
                for entry in handshake.get("peer_certificates") or []:
                    ders.append(base64.b64decode(entry["data"]))
    return list(dict.fromkeys(ders))


def test_lab_certificates_described_as_before() -> None:
    for der in _lab_ders():
        _assert_as_before(der)


def test_real_certificates_described_as_before() -> None:
    ders = _real_ders()
    if not ders:
        pytest.skip(f"no real OONI measurements under {OONI_REAL}")
    for der in ders:
        _assert_as_before(der)


def test_broken_certificates_described_as_before() -> None:
    der = _lab_ders()[2]
    for broken in (b"", b"0", b"\x30\x03\x02\x01\x00", der[:200], der + b"\x00", der[:-1]):
        _assert_as_before(broken)
    # Every single byte changed in turn: lengths, tags, names and dates gone wrong.
    for index in range(len(der)):
        _assert_as_before(der[:index] + bytes([der[index] ^ 0x41]) + der[index + 1 :])


# -- made-up certificates: names, SANs and validity of every kind --------------------------------
_KEY = ec.generate_private_key(ec.SECP256R1())
_OIDS = [NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME, NameOID.COUNTRY_NAME,
         NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.EMAIL_ADDRESS, NameOID.DOMAIN_COMPONENT,
         x509.ObjectIdentifier("1.2.3.4.5")]
_VALUES = st.text(alphabet=st.sampled_from('ab Z9,+";<>=#\\\x00é日КZ.-'), min_size=1, max_size=12)
_ATTRIBUTES = st.builds(
    lambda oid, value: x509.NameAttribute(oid, value, _validate=False), st.sampled_from(_OIDS), _VALUES
)
_NAMES = st.lists(st.lists(_ATTRIBUTES, min_size=1, max_size=2, unique=True), max_size=3).map(
    lambda rdns: x509.Name([x509.RelativeDistinguishedName(rdn) for rdn in rdns])
)
_GENERAL_NAMES = st.lists(
    st.one_of(
        st.from_regex(r"\A[a-z0-9*][a-z0-9.-]{0,20}\Z").map(x509.DNSName),
        st.ip_addresses().map(x509.IPAddress),
        st.just(x509.UniformResourceIdentifier("https://x.test/")),
        st.just(x509.RFC822Name("a@x.test")),
    ),
    max_size=4,
    unique=True,
)
# What a builder takes: 1950 on (UTCTime to 2049, GeneralizedTime after), whole seconds.
_MOMENTS = st.datetimes(
    min_value=datetime.datetime(1950, 1, 1), max_value=datetime.datetime(9999, 12, 31)
).map(lambda moment: moment.replace(microsecond=0))


def _certificate(
    subject: x509.Name, issuer: x509.Name, sans: list[x509.GeneralName], start: datetime.datetime,
    end: datetime.datetime,
) -> bytes:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(_KEY.public_key())
        .serial_number(12345)
        .not_valid_before(start)
        .not_valid_after(end)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(_KEY, hashes.SHA256()).public_bytes(_DER)


# Names that break the length rules (a 3-letter country) are built to be described: not warned of.
@pytest.mark.filterwarnings("ignore:Attribute's length:UserWarning")
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_NAMES, _NAMES, _GENERAL_NAMES, _MOMENTS, _MOMENTS)
def test_any_certificate_described_as_before(
    subject: x509.Name, issuer: x509.Name, sans: list[x509.GeneralName],
    start: datetime.datetime, end: datetime.datetime,
) -> None:
    start, end = sorted((start, end))
    try:
        der = _certificate(subject, issuer, sans, start, end + datetime.timedelta(seconds=1))
    except ValueError:
        reject()  # not encodable (a country's PrintableString with a ';', say)
    _assert_as_before(der)


def test_years_before_1000_described_as_before() -> None:
    # No builder writes them; a GeneralizedTime edited in place does (the signature is not read).
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old.test")])
    der = _certificate(name, name, [], datetime.datetime(2000, 1, 1), datetime.datetime(9999, 1, 1))
    for year in (b"0999", b"0001", b"0000", b"1000"):
        _assert_as_before(der.replace(b"99990101", year + b"0101"))


def test_an_issuer_seen_before_is_described_from_its_der() -> None:
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Issuer, Inc.+")])
    moment = datetime.datetime(2025, 1, 1)
    for host in ("a.test", "b.test"):
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
        der = _certificate(subject, issuer, [x509.DNSName(host), x509.IPAddress(
            ipaddress.ip_address("::1"))], moment, moment + datetime.timedelta(days=1))
        _assert_as_before(der)
        assert describe_certificate(der)["issuer"] == "CN=Issuer\\, Inc.\\+"
