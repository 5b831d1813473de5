"""Offline IP-to-ASN database (iptoasn.com TSV): load once, look addresses up by bisection."""

from __future__ import annotations

import gzip
import ipaddress
import os
import socket
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from probes.measurement_types import DnsQuery

GZIP_MAGIC = b"\x1f\x8b"
# iptoasn writes these for unrouted space; such ranges are dropped (AS 0 means "unknown").
_NO_COUNTRY = frozenset({"", "None", "Unknown", "ZZ"})
_U64 = (1 << 64) - 1


class AsnDatabaseError(ValueError):
    """A database file that cannot be read or parsed; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class AsnInfo:
    """Who announces an address: AS number, registry country (or ""), AS description."""

    asn: int
    cc: str
    name: str

    @property
    def as_label(self) -> str:
        return f"AS{self.asn}"


class _RangeTable:
    """Sorted, non-overlapping [start, end] ranges of one IP version with an info index each."""

    def __init__(self, version: int) -> None:
        self.version = version
        typecode = "I" if version == 4 else "Q"
        # IPv4 fits 32-bit cells; IPv6 is split into high and low 64-bit halves: 12 (v4) or
        # 36 (v6) bytes per range instead of ~100 for Python ints in lists.
        self._start_high: array[int] = array(typecode)
        self._start_low: array[int] = array("Q")
        self._end_high: array[int] = array(typecode)
        self._end_low: array[int] = array("Q")
        self._info: array[int] = array("I")
        self.last_end = -1

    def append(self, start: int, end: int, info_index: int) -> None:
        if self.version == 4:
            self._start_high.append(start)
            self._end_high.append(end)
        else:
            self._start_high.append(start >> 64)
            self._start_low.append(start & _U64)
            self._end_high.append(end >> 64)
            self._end_low.append(end & _U64)
        self._info.append(info_index)
        self.last_end = end

    def __len__(self) -> int:
        return len(self._info)

    def find(self, value: int) -> int | None:
        """Index into the info table of the range holding `value`, or None."""
        if self.version == 4:
            position = bisect_right(self._start_high, value) - 1
            if position < 0 or self._end_high[position] < value:
                return None
            return int(self._info[position])
        # Bisect the high halves, then the low halves among equal highs: all in C.
        high, low = value >> 64, value & _U64
        first = bisect_left(self._start_high, high)
        after = bisect_right(self._start_high, high)
        position = bisect_right(self._start_low, low, first, after) - 1
        if position < 0:
            return None
        end = (self._end_high[position] << 64) | self._end_low[position]
        return None if end < value else int(self._info[position])


class AsnDatabase:
    """IPv4 and IPv6 ranges to AsnInfo; lookups are pure and safe from any thread."""

    def __init__(self) -> None:
        self._tables = {4: _RangeTable(4), 6: _RangeTable(6)}
        self._infos: list[AsnInfo] = []
        self._info_index: dict[AsnInfo, int] = {}

    def add_range(self, start: str, end: str, info: AsnInfo) -> None:
        """Append one range; ranges of a version must come in increasing, disjoint order."""
        first, last = ipaddress.ip_address(start), ipaddress.ip_address(end)
        if first.version != last.version:
            raise ValueError(f"{start} and {end} are not of the same IP version")
        self._append(first.version, int(first), int(last), info)

    def _append(self, version: int, start: int, end: int, info: AsnInfo) -> None:
        table = self._tables[version]
        if end < start:
            raise ValueError("range end is before its start")
        if start <= table.last_end:
            raise ValueError(
                "range starts inside or before the previous one (ranges must be sorted and disjoint)"
            )
        # Many ranges share one AS: each distinct AsnInfo is kept once.
        index = self._info_index.get(info)
        if index is None:
            index = self._info_index[info] = len(self._infos)
            self._infos.append(info)
        table.append(start, end, index)

    def lookup(self, ip: str) -> AsnInfo | None:
        """The AS announcing `ip`, or None when unknown, unrouted or not an IP address."""
        try:
            version, value = _parse_ip(ip.strip("[]"), "ip")
        except ValueError:
            return None
        if version == 6 and value >> 32 == 0xFFFF:  # ::ffff:a.b.c.d is an IPv4 address
            version, value = 4, value & 0xFFFFFFFF
        index = self._tables[version].find(value)
        return None if index is None else self._infos[index]

    def __len__(self) -> int:
        return len(self._tables[4]) + len(self._tables[6])

    @property
    def ipv4_ranges(self) -> int:
        return len(self._tables[4])

    @property
    def ipv6_ranges(self) -> int:
        return len(self._tables[6])


# ---------------------------------------------------------------- loading (file reading only)


def load_asn_database(*paths: str | os.PathLike[str]) -> AsnDatabase:
    """Read iptoasn TSV files (`range_start range_end AS_number country_code AS_description`,
    tab-separated, IPv4, IPv6 or combined, plain or gzipped) into one AsnDatabase.

    Raises AsnDatabaseError naming the file (and line) that is unreadable or malformed.
    """
    database = AsnDatabase()
    for path in paths:
        for line_number, line in _read_lines(Path(path)):
            try:
                _add_line(database, line)
            except ValueError as error:
                raise AsnDatabaseError(f"{path}:{line_number}: {error}") from None
    return database


def _read_lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        with path.open("rb") as raw:
            gzipped = raw.read(2) == GZIP_MAGIC
        stream = gzip.open(path, "rb") if gzipped else path.open("rb")
        with stream:
            for line_number, data in enumerate(stream, start=1):
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise AsnDatabaseError(f"{path}:{line_number}: not UTF-8 text") from None
                yield line_number, text
    except OSError as error:
        reason = error.strerror or str(error)
        raise AsnDatabaseError(f"{path}: cannot read: {reason}") from None
    except EOFError:
        raise AsnDatabaseError(f"{path}: gzip data ends early (truncated download?)") from None


def _add_line(database: AsnDatabase, line: str) -> None:
    text = line.rstrip("\r\n")
    if not text.strip() or text.startswith("#"):
        return
    fields = text.split("\t")
    if len(fields) < 4:
        raise ValueError(
            f"expected 5 tab-separated fields (range_start range_end AS_number country_code "
            f"AS_description), got {len(fields)}"
        )
    start_text, end_text, asn_text, country = fields[0], fields[1], fields[2], fields[3]
    name = "\t".join(fields[4:]).strip()
    version, start = _parse_ip(start_text, "range_start")
    end_version, end = _parse_ip(end_text, "range_end")
    if version != end_version:
        raise ValueError(f"range_start {start_text!r} and range_end {end_text!r} differ in IP version")
    if not asn_text.isdigit() or int(asn_text) >= 1 << 32:
        raise ValueError(f"AS_number {asn_text!r} is not a number from 0 to 4294967295")
    asn = int(asn_text)
    if asn == 0:
        return
    country = "" if country in _NO_COUNTRY else country
    if country and not (len(country) == 2 and country.isalpha()):
        raise ValueError(f"country_code {country!r} is not a two-letter code")
    database._append(version, start, end, AsnInfo(asn, country.upper(), name))


def _parse_ip(text: str, field: str) -> tuple[int, int]:
    # inet_pton is strict and several times faster than ipaddress on ~500k lines.
    try:
        if ":" in text:
            return 6, int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
    except OSError:
        raise ValueError(f"{field} {text!r} is not an IP address") from None


# A long-running probe or helper rereads the file when it changes (a monthly refresh), and
# otherwise loads it once per process however many measurements ask.
_cache: dict[str, tuple[tuple[int, int], AsnDatabase]] = {}
_cache_lock = threading.Lock()


def _file_key(path: str) -> tuple[int, int]:
    try:
        status = os.stat(path)
    except OSError as error:
        raise AsnDatabaseError(f"{path}: cannot read: {error.strerror or error}") from None
    return status.st_mtime_ns, status.st_size


def cached_asn_database(path: str) -> AsnDatabase | None:
    """The database for `path` if already loaded and the file is unchanged; never parses."""
    entry = _cache.get(path)
    if entry is None:
        return None
    try:
        current = _file_key(path)
    except AsnDatabaseError:
        return None
    return entry[1] if entry[0] == current else None


def open_asn_database(path: str) -> AsnDatabase:
    """Load `path` once per process (again when the file changes); thread-safe."""
    with _cache_lock:
        key = _file_key(path)
        entry = _cache.get(path)
        if entry is not None and entry[0] == key:
            return entry[1]
        database = load_asn_database(path)
        _cache[path] = (key, database)
        return database


# ---------------------------------------------------------------- annotating measurements


def annotate_dns_answers(queries: Iterable[DnsQuery], database: AsnDatabase) -> None:
    """Add OONI's `asn` and `as_org_name` to each A/AAAA answer (0 and "" when unknown)."""
    for query in queries:
        for answer in query.get("answers") or []:
            address = answer.get("ipv4") or answer.get("ipv6")
            if not address:
                continue
            info = database.lookup(str(address))
            answer["asn"] = info.asn if info else 0
            answer["as_org_name"] = info.name if info else ""
