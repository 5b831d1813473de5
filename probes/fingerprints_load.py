"""Load the fingerprint data files (probes/data/*.toml) into a FingerprintDB, refusing bad entries."""

from __future__ import annotations

import csv
import functools
import io
import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Any

from probes.fingerprints_match import (
    BlockpageFingerprint,
    FalsePositive,
    FingerprintDB,
    InterceptionCA,
)
from probes.pattern_hints import normalize_text

DATA_DIR = Path(__file__).parent / "data"
BLOCKPAGES_FILE = DATA_DIR / "blockpages.toml"
INTERCEPTION_CAS_FILE = DATA_DIR / "interception_cas.toml"

_HTTP_PATTERNS = ("body_substring", "body_regex", "header", "title")
_DNS_PATTERNS = ("dns_address", "dns_cidr")
_CONFIDENCES = ("high", "medium", "low")
_HEX = re.compile(r"^[0-9a-f]+$")


class FingerprintFileError(ValueError):
    """A fingerprint data file that cannot be used; the message names the file and the entry."""



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
        regex = re.compile(re.escape(normalize_text(pattern)))
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


# ---- OONI's published blocking fingerprints (github.com/ooni/blocking-fingerprints) -------------
# fingerprints_http.csv and fingerprints_dns.csv share the columns below; `location_found` is
# "body", "header.<name>" or "dns", `pattern_type` "full", "contains" or "prefix".
OONI_CSV_COLUMNS = ("name", "location_found", "pattern_type", "pattern", "confidence_no_fp",
                    "expected_countries", "source", "exp_url", "notes", "scope")


def load_ooni_fingerprints_csv(path: str | Path) -> tuple[BlockpageFingerprint, ...]:
    """OONI's blocking-fingerprints CSV as blockpage fingerprints (ids "ooni.<name>"); a bad
    row is a FingerprintFileError naming the file and row."""
    csv_path = Path(path)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise FingerprintFileError(f"{csv_path}: {error.strerror or error}") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in ("name", "location_found", "pattern_type", "pattern")
               if c not in (reader.fieldnames or [])]
    if missing:
        raise FingerprintFileError(f"{csv_path}: not OONI's fingerprint CSV: no column "
                                   f"{', '.join(missing)} (expected {','.join(OONI_CSV_COLUMNS)})")
    fingerprints = []
    for index, row in enumerate(reader):
        where = f"row {index + 2}"
        entry = _ooni_row_entry(csv_path, where, row)
        fingerprints.append(_parse_blockpage(csv_path, index, entry))
    _check_unique(csv_path, [fingerprint.id for fingerprint in fingerprints])
    return tuple(fingerprints)


def _ooni_row_entry(path: Path, where: str, row: dict[str, str]) -> dict[str, Any]:
    name, location = (row.get("name") or "").strip(), (row.get("location_found") or "").strip()
    match_type, pattern = (row.get("pattern_type") or "").strip(), row.get("pattern") or ""
    if not name or not pattern:
        raise FingerprintFileError(f"{path}: {where}: 'name' and 'pattern' must be set")
    if match_type not in ("full", "contains", "prefix"):
        raise FingerprintFileError(f"{path}: {where}: pattern_type {match_type!r}, expected "
                                   "full, contains or prefix")
    entry: dict[str, Any] = {
        "id": f"ooni.{name}", "name": f"OONI fingerprint {name}",
        "country": ((row.get("expected_countries") or "").split(",")[0].strip() or "ZZ").upper(),
        "confidence": _ooni_confidence(row.get("confidence_no_fp")),
        "source": f"OONI blocking-fingerprints ({path.name})"
                  + (f": {row['source'].strip()}" if (row.get("source") or "").strip() else ""),
        "notes": (row.get("notes") or "").strip(),
    }
    escaped = re.escape(pattern)
    regex = {"full": f"^{escaped}$", "contains": escaped, "prefix": f"^{escaped}"}[match_type]
    if location == "dns":
        entry["kind"] = "dns_blockpage"
        entry["pattern_kind"], entry["pattern"] = _dns_pattern(path, where, pattern, match_type)
    elif location == "body":
        entry["kind"] = "http_blockpage"
        if match_type == "contains":
            entry["pattern_kind"], entry["pattern"] = "body_substring", pattern
        else:
            entry["pattern_kind"], entry["pattern"] = "body_regex", regex
    elif location.startswith("header."):
        entry.update(kind="http_blockpage", pattern_kind="header", pattern=regex,
                     header=location.removeprefix("header."))
    else:
        raise FingerprintFileError(f"{path}: {where}: location_found {location!r}, expected "
                                   "body, header.<name> or dns")
    return entry


def _dns_pattern(path: Path, where: str, pattern: str, match_type: str) -> tuple[str, str]:
    if match_type != "prefix":
        return "dns_address", pattern.strip()
    # "10.10." is every address starting so: the network of its whole octets.
    octets = [o for o in pattern.strip().split(".") if o]
    if not 0 < len(octets) < 4 or not all(o.isdigit() for o in octets):
        raise FingerprintFileError(f"{path}: {where}: DNS prefix {pattern!r} is not whole octets")
    return "dns_cidr", ".".join([*octets, *["0"] * (4 - len(octets))]) + f"/{8 * len(octets)}"


def _ooni_confidence(value: str | None) -> str:
    # OONI's confidence_no_fp: how sure that a match is no false positive, 0-10.
    try:
        score = int((value or "").strip())
    except ValueError:
        return "medium"
    return "high" if score >= 9 else "medium" if score >= 5 else "low"


@functools.lru_cache(maxsize=8)
def fingerprints_with_extras(extra_csv: str | None) -> FingerprintDB:
    """The packaged fingerprints plus OONI-format CSV ones (`[probe] extra_fingerprints`);
    loaded once per path per process."""
    base = default_fingerprints()
    if not extra_csv:
        return base
    extras = load_ooni_fingerprints_csv(extra_csv)
    _check_unique(Path(extra_csv), [f.id for f in (*base.blockpages, *extras)])
    return FingerprintDB((*base.blockpages, *extras), base.false_positives, base.interception_cas)
