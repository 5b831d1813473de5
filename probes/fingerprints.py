"""Blockpage and interception-CA fingerprints: load the data files, match pages, answers, chains; pure."""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from probes.pattern_hints import PageText, normalize_text, normalized_pattern, text_needs_non_ascii

DATA_DIR = Path(__file__).parent / "data"
BLOCKPAGES_FILE = DATA_DIR / "blockpages.toml"
INTERCEPTION_CAS_FILE = DATA_DIR / "interception_cas.toml"

FingerprintKind = Literal["http_blockpage", "dns_blockpage", "interception_ca"]
PatternKind = Literal["body_substring", "body_regex", "header", "title", "dns_address", "dns_cidr"]
Confidence = Literal["high", "medium", "low"]

_HTTP_PATTERNS = ("body_substring", "body_regex", "header", "title")
_DNS_PATTERNS = ("dns_address", "dns_cidr")
_CONFIDENCES = ("high", "medium", "low")
_HEX = re.compile(r"^[0-9a-f]+$")


class FingerprintFileError(ValueError):
    """A fingerprint data file that cannot be used; the message names the file and the entry."""


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
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "name": self.name,
            "evidence": self.evidence,
            "confidence": self.confidence,
            "country": self.country,
            "matched_by": self.matched_by,
            **self.details,
        }


@dataclass(frozen=True, slots=True)
class FingerprintDB:
    blockpages: tuple[BlockpageFingerprint, ...]
    false_positives: tuple[FalsePositive, ...]
    interception_cas: tuple[InterceptionCA, ...]


# ---------------------------------------------------------------- loading


def load_fingerprints(
    path: str | Path | None = None, interception_path: str | Path | None = None
) -> FingerprintDB:
    """Read the blockpage file (default probes/data/blockpages.toml) and the interception-CA file
    (default: interception_cas.toml beside it, else the packaged one)."""
    blockpage_file = Path(path) if path is not None else BLOCKPAGES_FILE
    if interception_path is not None:
        ca_file = Path(interception_path)
    elif (blockpage_file.parent / INTERCEPTION_CAS_FILE.name).exists():
        ca_file = blockpage_file.parent / INTERCEPTION_CAS_FILE.name
    else:
        ca_file = INTERCEPTION_CAS_FILE
    blockpage_data = _read_toml(blockpage_file)
    ca_data = _read_toml(ca_file)
    blockpages = tuple(
        _parse_blockpage(blockpage_file, index, entry)
        for index, entry in enumerate(_entries(blockpage_file, blockpage_data, "fingerprint"))
    )
    _check_unique(blockpage_file, [fingerprint.id for fingerprint in blockpages])
    false_positives = tuple(
        _parse_false_positive(blockpage_file, index, entry)
        for index, entry in enumerate(_entries(blockpage_file, blockpage_data, "false_positive"))
    )
    cas = tuple(
        _parse_ca(ca_file, index, entry)
        for index, entry in enumerate(_entries(ca_file, ca_data, "ca"))
    )
    _check_unique(ca_file, [ca.id for ca in cas])
    return FingerprintDB(blockpages, false_positives, cas)


_default_db: FingerprintDB | None = None


def default_fingerprints() -> FingerprintDB:
    """The packaged data, loaded once (the files do not change while a process runs)."""
    global _default_db
    if _default_db is None:
        _default_db = load_fingerprints()
    return _default_db


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise FingerprintFileError(f"{path}: fingerprint file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise FingerprintFileError(f"{path}: not valid TOML: {error}") from None


def _entries(path: Path, data: dict[str, Any], table: str) -> list[dict[str, Any]]:
    entries = data.get(table, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise FingerprintFileError(f"{path}: [[{table}]] must be an array of tables")
    return entries


def _check_unique(path: Path, ids: list[str]) -> None:
    seen: set[str] = set()
    for entry_id in ids:
        if entry_id in seen:
            raise FingerprintFileError(f"{path}: entry {entry_id!r}: duplicate id")
        seen.add(entry_id)


def _text(
    path: Path, where: str, entry: dict[str, Any], key: str, default: str | None = None
) -> str:
    value = entry.get(key, default)
    if not isinstance(value, str) or (default is None and not value):
        raise FingerprintFileError(f"{path}: {where}: {key!r} must be a non-empty string")
    return value


def _choice(
    path: Path, where: str, entry: dict[str, Any], key: str, allowed: tuple[str, ...]
) -> str:
    value = entry.get(key)
    if value not in allowed:
        raise FingerprintFileError(
            f"{path}: {where}: {key!r} is {value!r}, expected one of {', '.join(allowed)}"
        )
    return str(value)


def _label(index: int, entry: dict[str, Any]) -> str:
    return f"entry {entry['id']!r}" if isinstance(entry.get("id"), str) else f"entry #{index + 1}"


def _compile(path: Path, where: str, pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as error:
        raise FingerprintFileError(f"{path}: {where}: bad regex {pattern!r}: {error}") from None


def _parse_blockpage(path: Path, index: int, entry: dict[str, Any]) -> BlockpageFingerprint:
    where = _label(index, entry)
    entry_id = _text(path, where, entry, "id")
    kind = _choice(path, where, entry, "kind", ("http_blockpage", "dns_blockpage"))
    allowed = _HTTP_PATTERNS if kind == "http_blockpage" else _DNS_PATTERNS
    pattern_kind = _choice(path, where, entry, "pattern_kind", allowed)
    pattern = _text(path, where, entry, "pattern")
    max_body_length = entry.get("max_body_length")
    if max_body_length is not None and (
        not isinstance(max_body_length, int)
        or isinstance(max_body_length, bool)
        or max_body_length <= 0
    ):
        raise FingerprintFileError(f"{path}: {where}: 'max_body_length' must be a positive integer")
    header = None
    regex = None
    network = None
    if pattern_kind == "header":
        header = _text(path, where, entry, "header")
        regex = _compile(path, where, pattern)
    elif pattern_kind == "body_regex":
        regex = _compile(path, where, pattern)
    elif pattern_kind in _DNS_PATTERNS:
        try:
            network = ipaddress.ip_network(pattern, strict=pattern_kind == "dns_cidr")
        except ValueError as error:
            raise FingerprintFileError(
                f"{path}: {where}: bad address {pattern!r}: {error}"
            ) from None
    return BlockpageFingerprint(
        id=entry_id,
        kind=kind,  # type: ignore[arg-type]
        pattern_kind=pattern_kind,  # type: ignore[arg-type]
        pattern=pattern,
        name=_text(path, where, entry, "name"),
        country=_text(path, where, entry, "country"),
        confidence=_choice(path, where, entry, "confidence", _CONFIDENCES),  # type: ignore[arg-type]
        source=_text(path, where, entry, "source"),
        notes=_text(path, where, entry, "notes", ""),
        header=header,
        max_body_length=max_body_length,
        regex=regex,
        network=network,
    )


def _parse_false_positive(path: Path, index: int, entry: dict[str, Any]) -> FalsePositive:
    where = f"false_positive {_label(index, entry)}"
    pattern_kind = _choice(path, where, entry, "pattern_kind", ("body_substring", "body_regex"))
    pattern = _text(path, where, entry, "pattern")
    if pattern_kind == "body_substring":
        regex = re.compile(re.escape(_normalize(pattern)))
    else:
        regex = _compile(path, where, pattern)
    return FalsePositive(
        id=_text(path, where, entry, "id"),
        pattern_kind=pattern_kind,  # type: ignore[arg-type]
        regex=regex,
        notes=_text(path, where, entry, "notes", ""),
    )


def _hashes(path: Path, where: str, entry: dict[str, Any], key: str, length: int) -> frozenset[str]:
    values = entry.get(key, [])
    if not isinstance(values, list):
        raise FingerprintFileError(f"{path}: {where}: {key!r} must be a list of hex strings")
    cleaned: set[str] = set()
    for value in values:
        text = str(value).lower().replace(":", "")
        if len(text) != length or not _HEX.match(text):
            raise FingerprintFileError(
                f"{path}: {where}: {key!r} value {value!r} is not {length} hex digits"
            )
        cleaned.add(text)
    return frozenset(cleaned)


def _parse_ca(path: Path, index: int, entry: dict[str, Any]) -> InterceptionCA:
    where = _label(index, entry)
    raw_names = entry.get("names", [])
    if not isinstance(raw_names, list) or not all(
        isinstance(n, dict) and n and all(isinstance(v, str) for v in n.values()) for n in raw_names
    ):
        raise FingerprintFileError(
            f"{path}: {where}: 'names' must be a list of tables of attribute = \"value\""
        )
    names = tuple(
        tuple(sorted((key.upper(), value.casefold()) for key, value in pattern.items()))
        for pattern in raw_names
    )
    ca = InterceptionCA(
        id=_text(path, where, entry, "id"),
        name=_text(path, where, entry, "name"),
        country=_text(path, where, entry, "country"),
        confidence=_choice(path, where, entry, "confidence", _CONFIDENCES),  # type: ignore[arg-type]
        source=_text(path, where, entry, "source"),
        notes=_text(path, where, entry, "notes", ""),
        sha256=_hashes(path, where, entry, "sha256", 64),
        sha1=_hashes(path, where, entry, "sha1", 40),
        spki_sha256=_hashes(path, where, entry, "spki_sha256", 64),
        names=names,
    )
    if not (ca.sha256 or ca.sha1 or ca.spki_sha256 or ca.names):
        raise FingerprintFileError(f"{path}: {where}: needs fingerprints or names to match")
    return ca


# ---------------------------------------------------------------- matching


_normalize = normalize_text


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
            normalized = _normalize(body) if normalized is None else normalized
            haystack = normalized
        else:
            haystack = body
        if entry.regex.search(haystack):
            return entry
    return None


def match_http_blockpage(
    db: FingerprintDB,
    body: str | None,
    headers: dict[str, Any] | list[Any] | None,
    title: str | None,
) -> Match | None:
    """The first HTTP blockpage fingerprint matching a response, unless the page is on the
    false-positive list."""
    page = PageText(body or "", title)
    for fingerprint in db.blockpages:
        if fingerprint.kind != "http_blockpage":
            continue
        if fingerprint.max_body_length is not None and len(page.body) > fingerprint.max_body_length:
            continue
        evidence = _http_evidence(fingerprint, page, headers)
        if evidence is not None:
            # The false-positive list is read only for pages that matched (most do not).
            if detect_false_positive(db, body) is not None:
                return None
            return _blockpage_match(fingerprint, evidence)
    return None


def _http_evidence(
    fingerprint: BlockpageFingerprint,
    page: PageText,
    headers: dict[str, Any] | list[Any] | None,
) -> str | None:
    if fingerprint.pattern_kind == "body_substring":
        if not page.body or (page.body.isascii() and text_needs_non_ascii(fingerprint.pattern)):
            return None
        if normalized_pattern(fingerprint.pattern) in page.normalized_body:
            return f"body contains {fingerprint.pattern!r}"
    elif fingerprint.pattern_kind == "body_regex":
        assert fingerprint.regex is not None
        if page.body.isascii() and not page.may_match(fingerprint.regex):
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
    parsed: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for text in addresses:
        try:
            parsed.append(ipaddress.ip_address(text))
        except ValueError:
            continue
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
    for part in parts:
        key, separator, value = part.partition("=")
        if separator:
            attributes.setdefault(key.strip().upper(), []).append(value.strip())
    return attributes


def _name_matches(pattern: tuple[tuple[str, str], ...], name: dict[str, list[str]]) -> bool:
    for attribute, wanted in pattern:
        values = [value.casefold() for value in name.get(attribute, [])]
        if wanted.endswith("*"):
            if not any(value.startswith(wanted[:-1]) for value in values):
                return False
        elif wanted not in values:
            return False
    return True


def match_interception_ca(db: FingerprintDB, chain: list[dict[str, Any]]) -> Match | None:
    """The interception CA a certificate chain shows: by fingerprint first (any certificate in the
    chain), then by subject or issuer name; `matched_by` says which."""
    for ca in db.interception_cas:
        for position, certificate in enumerate(chain):
            for key, known in (
                ("sha256", ca.sha256),
                ("sha1", ca.sha1),
                ("spki_sha256", ca.spki_sha256),
            ):
                value = str(certificate.get(key) or "").lower()
                if value and value in known:
                    return _ca_match(ca, chain, key, f"certificate #{position} {key} {value}")
    for position, certificate in enumerate(chain):
        for field_name in ("issuer", "subject"):
            name = parse_distinguished_name(certificate.get(field_name))
            for ca in db.interception_cas:
                if any(_name_matches(pattern, name) for pattern in ca.names):
                    text = certificate.get(field_name)
                    return _ca_match(
                        ca, chain, field_name, f"certificate #{position} {field_name} {text}"
                    )
    return None


def _ca_match(
    ca: InterceptionCA, chain: list[dict[str, Any]], matched_by: str, evidence: str
) -> Match:
    leaf = chain[0] if chain else {}
    return Match(
        id=ca.id,
        kind="interception_ca",
        name=ca.name,
        evidence=evidence,
        confidence=ca.confidence,
        country=ca.country,
        matched_by=matched_by,
        details={
            "issuer": leaf.get("issuer"),
            "chain_sha256": [c.get("sha256") for c in chain],
            "chain_sha1": [c.get("sha1") for c in chain],
        },
    )
