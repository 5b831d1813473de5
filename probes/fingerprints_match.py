"""Blockpage and interception-CA fingerprints as values, and matching pages, answers, chains; pure."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from probes.bogons import parse_ip
from probes.measurement_types import (
    CertificateDescription,
    Confidence,
    FingerprintKind,
    FingerprintRecord,
    InterceptionDetails,
)
from probes.pattern_hints import (
    PageText,
    normalize_text,
    normalized_pattern,
    odd_characters,
    regex_needs_non_ascii,
    required_ascii_runs,
    required_runs,
    text_needs_non_ascii,
)

PatternKind = Literal["body_substring", "body_regex", "header", "title", "dns_address", "dns_cidr"]


@dataclass(frozen=True, slots=True)
class BlockpageFingerprint:
    id: str
    kind: FingerprintKind
    pattern_kind: PatternKind
    pattern: str
    name: str
    country: str
    confidence: Confidence
    source: str
    notes: str = ""
    header: str | None = None
    max_body_length: int | None = None
    # Precompiled forms of `pattern`, filled by the loader.
    regex: re.Pattern[str] | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None


@dataclass(frozen=True, slots=True)
class FalsePositive:
    id: str
    pattern_kind: PatternKind
    regex: re.Pattern[str]
    notes: str = ""


@dataclass(frozen=True, slots=True)
class InterceptionCA:
    id: str
    name: str
    country: str
    confidence: Confidence
    source: str
    notes: str = ""
    sha256: frozenset[str] = frozenset()
    sha1: frozenset[str] = frozenset()
    spki_sha256: frozenset[str] = frozenset()
    # Each pattern: attribute (upper case) -> casefolded value; a trailing "*" is a prefix.
    names: tuple[tuple[tuple[str, str], ...], ...] = ()


@dataclass(frozen=True, slots=True)
class Match:
    """One fingerprint that matched, with what matched it (the measurement's `fingerprint`)."""

    id: str
    kind: FingerprintKind
    name: str
    evidence: str
    confidence: Confidence
    country: str
    matched_by: str
    # What an interception CA's chain looked like; None for blockpages.
    details: InterceptionDetails | None = None

    def as_dict(self) -> FingerprintRecord:
        record: FingerprintRecord = {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "evidence": self.evidence,
            "confidence": self.confidence,
            "country": self.country,
            "matched_by": self.matched_by,
        }
        if self.details is not None:
            record["issuer"] = self.details["issuer"]
            record["chain_sha256"] = self.details["chain_sha256"]
            record["chain_sha1"] = self.details["chain_sha1"]
        return record


@dataclass(frozen=True, slots=True)
class HttpCheck:
    """An HTTP blockpage fingerprint and what a page needs to match it, worked out once."""

    fingerprint: BlockpageFingerprint
    # No ASCII body can match (a Cyrillic phrase or regex): skipped on ASCII pages.
    needs_non_ascii: bool = False
    # A body regex's ASCII runs, one of which an ASCII body must contain (None: no such hint).
    runs: tuple[str, ...] | None = None
    caseless: bool = False
    # For pages that are not ASCII: groups of runs of any characters (PageText.may_contain).
    text_runs: tuple[tuple[str, ...], ...] | None = None
    text_caseless: bool = False
    # A substring fingerprint's longest word, normalized (PageText.may_hold_word).
    word: str = ""


@dataclass(frozen=True, slots=True)
class FingerprintDB:
    blockpages: tuple[BlockpageFingerprint, ...]
    false_positives: tuple[FalsePositive, ...]
    interception_cas: tuple[InterceptionCA, ...]
    # The HTTP blockpage fingerprints in order, with their prefilters (from blockpages), and
    # those of them an ASCII body can match (most pages are ASCII).
    http_checks: tuple[HttpCheck, ...] = field(init=False, repr=False, compare=False)
    ascii_http_checks: tuple[HttpCheck, ...] = field(init=False, repr=False, compare=False)
    # Every interception CA's certificate fingerprints, to pass over chains that show none.
    ca_fingerprints: frozenset[str] = field(init=False, repr=False, compare=False)
    # The letters of the checks' case-blind text_runs and their substring words: what
    # pattern_hints.odd_characters is asked about for pages that are not ASCII.
    text_characters: frozenset[str] = field(init=False, repr=False, compare=False)
    text_words: tuple[str, ...] = field(init=False, repr=False, compare=False)
    # The interception CA (or None) each issuer or subject met so far names (bounded, see
    # _ca_named): the one mutable part, a memo of a pure function of the text.
    ca_by_name: dict[str, InterceptionCA | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        checks = _http_checks(self.blockpages)
        object.__setattr__(self, "http_checks", checks)
        object.__setattr__(self, "ascii_http_checks", tuple(c for c in checks if not c.needs_non_ascii))
        object.__setattr__(self, "ca_fingerprints", frozenset().union(
            *(ca.sha256 | ca.sha1 | ca.spki_sha256 for ca in self.interception_cas)))
        object.__setattr__(self, "ca_by_name", {})
        object.__setattr__(self, "text_characters", frozenset(
            "".join(run for c in checks if c.text_caseless for runs in c.text_runs or () for run in runs)))
        object.__setattr__(self, "text_words", tuple(sorted({c.word for c in checks if c.word})))


def _http_checks(blockpages: Sequence[BlockpageFingerprint]) -> tuple[HttpCheck, ...]:
    checks = []
    for fingerprint in blockpages:
        if fingerprint.kind != "http_blockpage":
            continue
        if fingerprint.pattern_kind == "body_substring":
            words = normalized_pattern(fingerprint.pattern).split()
            checks.append(HttpCheck(
                fingerprint, text_needs_non_ascii(fingerprint.pattern), word=max(words, key=len, default="")
            ))
        elif fingerprint.pattern_kind == "body_regex" and fingerprint.regex is not None:
            required = required_ascii_runs(fingerprint.regex)
            text = required_runs(fingerprint.regex)
            checks.append(HttpCheck(
                fingerprint,
                regex_needs_non_ascii(fingerprint.regex),
                required[0] if required else None,
                required[1] if required else False,
                text[0] if text else None,
                text[1] if text else False,
            ))
        else:
            checks.append(HttpCheck(fingerprint))
    return tuple(checks)


# ---------------------------------------------------------------- matching



def _header_values(headers: dict[str, Any] | list[Any] | None, name: str) -> list[str]:
    if not headers:
        return []
    pairs = headers.items() if isinstance(headers, dict) else headers
    wanted = name.casefold()
    values: list[str] = []
    for key, value in pairs:
        if str(key).casefold() != wanted:
            continue
        if isinstance(value, list):
            values.extend(str(v) for v in value)
        else:
            values.append(str(value))
    return values


def detect_false_positive(db: FingerprintDB, body: str | None) -> FalsePositive | None:
    """The first false-positive entry a page matches, if any."""
    if not body:
        return None
    normalized = None
    for entry in db.false_positives:
        if entry.pattern_kind == "body_substring":
            normalized = normalize_text(body) if normalized is None else normalized
            haystack = normalized
        else:
            haystack = body
        if entry.regex.search(haystack):
            return entry
    return None


def warm_up(db: FingerprintDB) -> None:
    """Work out now the tables the first page that is not ASCII would (pattern_hints, ~0.3-0.6 s
    of CPU once per process), so that no measurement's steps wait on them mid-round."""
    odd_characters(db.text_characters, db.text_words)


def match_http_blockpage(
    db: FingerprintDB,
    body: str | None,
    headers: dict[str, Any] | list[Any] | None,
    title: str | None,
) -> Match | None:
    """The first HTTP blockpage fingerprint matching a response, unless the page is on the
    false-positive list."""
    page = PageText(body or "", title)
    ascii_body = page.body.isascii()
    # Where lower() may not read the page as the regex engine or casefold() do (odd characters).
    odd = "" if ascii_body else odd_characters(db.text_characters, db.text_words)
    for check in db.ascii_http_checks if ascii_body else db.http_checks:
        fingerprint = check.fingerprint
        if fingerprint.max_body_length is not None and len(page.body) > fingerprint.max_body_length:
            continue
        evidence = _http_evidence(check, page, ascii_body, odd, headers)
        if evidence is not None:
            # The false-positive list is read only for pages that matched (most do not).
            if detect_false_positive(db, body) is not None:
                return None
            return _blockpage_match(fingerprint, evidence)
    return None


def _http_evidence(
    check: HttpCheck,
    page: PageText,
    ascii_body: bool,
    odd: str,
    headers: dict[str, Any] | list[Any] | None,
) -> str | None:
    fingerprint = check.fingerprint
    if fingerprint.pattern_kind == "body_substring":
        if not page.body or (ascii_body and check.needs_non_ascii):
            return None
        if not ascii_body and check.word and not page.may_hold_word(check.word, odd):
            return None  # spares casefolding a page that is not ASCII
        if normalized_pattern(fingerprint.pattern) in page.normalized_body:
            return f"body contains {fingerprint.pattern!r}"
    elif fingerprint.pattern_kind == "body_regex":
        assert fingerprint.regex is not None
        if ascii_body and (
            check.needs_non_ascii
            or (check.runs is not None and not page.contains_any(check.runs, check.caseless))
        ):
            return None
        if not ascii_body and check.text_runs is not None and not page.may_contain(
            check.text_runs, check.text_caseless, odd
        ):
            return None
        found = fingerprint.regex.search(page.body)
        if found:
            return f"body matches {found.group(0)[:120]!r}"
    elif fingerprint.pattern_kind == "title":
        if page.normalized_title and page.normalized_title == normalized_pattern(fingerprint.pattern):
            return f"title is {fingerprint.pattern!r}"
    elif fingerprint.pattern_kind == "header":
        assert fingerprint.regex is not None and fingerprint.header is not None
        for value in _header_values(headers, fingerprint.header):
            if fingerprint.regex.search(value):
                return f"header {fingerprint.header}: {value[:120]}"
    return None


def _blockpage_match(fingerprint: BlockpageFingerprint, evidence: str) -> Match:
    return Match(
        id=fingerprint.id,
        kind=fingerprint.kind,
        name=fingerprint.name,
        evidence=evidence,
        confidence=fingerprint.confidence,
        country=fingerprint.country,
        matched_by=fingerprint.pattern_kind,
    )


def match_dns_blockpage(db: FingerprintDB, addresses: list[str] | tuple[str, ...]) -> Match | None:
    """The first DNS blockpage fingerprint covering one of the answer addresses."""
    parsed = [address for address in map(parse_ip, addresses) if address is not None]
    for fingerprint in db.blockpages:
        if fingerprint.kind != "dns_blockpage" or fingerprint.network is None:
            continue
        for address in parsed:
            if address.version == fingerprint.network.version and address in fingerprint.network:
                return _blockpage_match(fingerprint, f"answer {address} in {fingerprint.pattern}")
    return None


def parse_distinguished_name(text: str | None) -> dict[str, list[str]]:
    """'CN=a\\,b,O=X,C=KZ' (RFC 4514, as certificates.py writes it) -> {'CN': ['a,b'], ...}."""
    attributes: dict[str, list[str]] = {}
    if not text:
        return attributes
    parts = _dn_parts(text)
    for part in parts:
        key, separator, value = part.partition("=")
        if separator:
            attributes.setdefault(key.strip().upper(), []).append(value.strip())
    return attributes


def _dn_parts(text: str) -> list[str]:
    # Without an escape every "," and "+" separates (most names: every new site's leaf is read).
    if "\\" not in text:
        return text.replace("+", ",").split(",")
    return _dn_parts_escaped(text)


def _dn_parts_escaped(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for char in text:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char in ",+":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _ca_named(db: FingerprintDB, text: Any) -> InterceptionCA | None:
    """The first interception CA whose name patterns match an issuer or subject."""
    if not isinstance(text, str):
        return _first_ca_named(db.interception_cas, text)  # foreign data: not remembered
    # A handful of issuers and subjects come back on every handshake: each is judged once.
    found = db.ca_by_name.get(text, _UNSEEN)
    if found is _UNSEEN:
        if len(db.ca_by_name) >= _CA_BY_NAME_SIZE:
            db.ca_by_name.clear()
        found = db.ca_by_name[text] = _first_ca_named(db.interception_cas, text)
    return found  # type: ignore[return-value]


_UNSEEN = object()
_CA_BY_NAME_SIZE = 4096


def _first_ca_named(cas: tuple[InterceptionCA, ...], text: Any) -> InterceptionCA | None:
    name = {
        attribute: tuple(value.casefold() for value in values)
        for attribute, values in parse_distinguished_name(text).items()
    }
    for ca in cas:
        if any(_name_matches(pattern, name) for pattern in ca.names):
            return ca
    return None


def _name_matches(pattern: tuple[tuple[str, str], ...], name: dict[str, tuple[str, ...]]) -> bool:
    for attribute, wanted in pattern:
        values = name.get(attribute, ())
        if wanted.endswith("*"):
            if not any(value.startswith(wanted[:-1]) for value in values):
                return False
        elif wanted not in values:
            return False
    return True


def match_interception_ca(db: FingerprintDB, chain: Sequence[CertificateDescription]) -> Match | None:
    """The interception CA a certificate chain shows: by fingerprint first (any certificate in the
    chain), then by subject or issuer name; `matched_by` says which."""
    # Each certificate's fingerprints, read once for all the CAs.
    fingerprints = [
        [(key, str(certificate.get(key) or "").lower()) for key in _FINGERPRINT_KEYS]
        for certificate in chain
    ]
    known = db.ca_fingerprints
    if any(value and value in known for values in fingerprints for _, value in values):
        for ca in db.interception_cas:
            for position, values in enumerate(fingerprints):
                for key, value in values:
                    if value and value in _known_fingerprints(ca, key):
                        return _ca_match(ca, chain, key, f"certificate #{position} {key} {value}")
    for position, certificate in enumerate(chain):
        for field_name, text in (
            ("issuer", certificate.get("issuer")),
            ("subject", certificate.get("subject")),
        ):
            named = _ca_named(db, text)
            if named is not None:
                return _ca_match(named, chain, field_name, f"certificate #{position} {field_name} {text}")
    return None


_FINGERPRINT_KEYS = ("sha256", "sha1", "spki_sha256")


def _known_fingerprints(ca: InterceptionCA, key: str) -> frozenset[str]:
    if key == "sha256":
        return ca.sha256
    return ca.sha1 if key == "sha1" else ca.spki_sha256


def _ca_match(
    ca: InterceptionCA, chain: Sequence[CertificateDescription], matched_by: str, evidence: str
) -> Match:
    issuer = chain[0].get("issuer") if chain else None
    return Match(
        id=ca.id,
        kind="interception_ca",
        name=ca.name,
        evidence=evidence,
        confidence=ca.confidence,
        country=ca.country,
        matched_by=matched_by,
        details={
            "issuer": issuer,
            "chain_sha256": [c.get("sha256") for c in chain],
            "chain_sha1": [c.get("sha1") for c in chain],
        },
    )
