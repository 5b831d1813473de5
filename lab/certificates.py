"""The lab's certificate authorities: a trusted test root and a rogue Kazakh-style interception CA."""

from __future__ import annotations

import datetime
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_SERVER_NAME = "default.lab.test"


def _name(
    *, country: str | None = None, organization: str | None = None, common_name: str
) -> x509.Name:
    attributes = []
    if country:
        attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country))
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


@dataclass(frozen=True)
class Authority:
    """A signing certificate with its key; `chain` is what a server sends after its leaf."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...] = ()


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def make_root(subject: x509.Name) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(certificate, key)


def make_intermediate(parent: Authority, subject: x509.Name) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(parent.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .sign(parent.key, hashes.SHA256())
    )
    return Authority(certificate, key, chain=(certificate,))


def make_lab_root() -> Authority:
    return make_root(_name(organization="blockmon lab", common_name="blockmon lab root CA"))


def make_rogue_authority() -> Authority:
    """The 2019 interception chain: root "Qaznet Trust Network", intermediate "Security Certificate"."""
    root = make_root(_name(country="KZ", common_name="Qaznet Trust Network"))
    return make_intermediate(root, _name(country="KZ", common_name="Security Certificate"))


def issue_leaf(
    authority: Authority, hostname: str, *, forged: bool = False
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A server certificate for hostname (SAN = hostname); forged ones mimic the 2019 leaves."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    # The 2019 forgeries shifted validity 6 h earlier and kept only subject and SANs.
    start = now - datetime.timedelta(hours=6 if forged else 1)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name=hostname))
        .issuer_name(authority.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
    )
    if not forged:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        ).add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    return builder.sign(authority.key, hashes.SHA256()), key


def certificate_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


class ServerContexts:
    """Per-hostname server SSL contexts of one authority, made on first use and kept.

    `listening_context` is the one handed to the socket; its sni_callback swaps in the
    hostname's own context, and an unknown or absent SNI keeps the default certificate.
    """

    def __init__(
        self, authority: Authority, directory: Path, *, forged: bool, known: set[str]
    ) -> None:
        self._authority = authority
        self._directory = directory
        self._forged = forged
        self._known = known  # shared with the lab: hostnames that get their own certificate
        self._contexts: dict[str, ssl.SSLContext] = {}
        directory.mkdir(parents=True, exist_ok=True)
        self.listening_context = self._context_for(DEFAULT_SERVER_NAME)
        self.listening_context.sni_callback = self._pick_context

    def _context_for(self, hostname: str) -> ssl.SSLContext:
        context = self._contexts.get(hostname)
        if context is None:
            certificate, key = issue_leaf(self._authority, hostname, forged=self._forged)
            path = self._directory / f"{hostname}.pem"
            chain = b"".join(certificate_pem(c) for c in (certificate, *self._authority.chain))
            path.write_bytes(key_pem(key) + chain)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(path)
            context.set_alpn_protocols(["http/1.1"])
            self._contexts[hostname] = context
        return context

    def prepare(self, hostnames: set[str]) -> None:
        for hostname in hostnames:
            self._context_for(hostname)

    def _pick_context(
        self, ssl_object: ssl.SSLObject, server_name: str | None, _: ssl.SSLContext
    ) -> None:
        if server_name is not None:
            hostname = server_name.rstrip(".").lower()
            if hostname in self._known:
                ssl_object.context = self._context_for(hostname)
