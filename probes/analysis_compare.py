"""Pure comparisons of the probe's observations with the control's: DNS, HTTP pages, body hashes."""

from __future__ import annotations

import hashlib
import operator
import re
import struct
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from probes.bogons import IPNetwork, is_bogon, parse_ip
from probes.measurement_types import DnsConsistency, HttpResponse

# OONI compares only header *names* that few servers send: these are sent by nearly everyone, so
# they say nothing about whether two responses came from the same server (Web Connectivity spec).
COMMON_HEADERS: frozenset[str] = frozenset(
    {
        "date",
        "content-type",
        "server",
        "cache-control",
        "vary",
        "set-cookie",
        "location",
        "expires",
        "x-powered-by",
        "content-encoding",
        "last-modified",
        "accept-ranges",
        "pragma",
        "x-frame-options",
        "etag",
        "x-content-type-options",
        "age",
        "via",
        "p3p",
        "x-xss-protection",
        "content-language",
        "cf-ray",
        "strict-transport-security",
        "link",
        "x-varnish",
        "content-length",
        "connection",
        "transfer-encoding",
        "keep-alive",
        "alt-svc",
        "referrer-policy",
        "content-security-policy",
        "report-to",
        "nel",
    }
)

# OONI's threshold: shorter/longer body length above 0.7 counts as the same page.
BODY_PROPORTION_THRESHOLD = 0.7
# Two 64-bit simhashes this close (Hamming distance) are near-duplicate texts; measured on
# dynamic news front pages, which differ by a few headlines.
SIMHASH_MAX_DISTANCE = 10
# Simhash of a tiny page is noise: a blockpage and a short error page can collide.
SIMHASH_MIN_TEXT = 512
# OONI compares title words of at least five characters (short words are noise: "the", "и").
TITLE_WORD_MIN_LENGTH = 5

_WORD = re.compile(r"\w+", re.UNICODE)


def split_endpoint(endpoint: str) -> tuple[str, int | None]:
    """'1.2.3.4:443' / '[::1]:443' -> (ip, port)."""
    if endpoint.startswith("["):
        host, _, rest = endpoint[1:].partition("]")
        port = rest.lstrip(":")
        return host, int(port) if port.isdigit() else None
    host, separator, port = endpoint.rpartition(":")
    if not separator or ":" in host:
        return endpoint, None
    return host, int(port) if port.isdigit() else None


def format_endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def is_ipv6(ip: str) -> bool:
    address = parse_ip(ip)
    return address is not None and address.version == 6


# ---------------------------------------------------------------- DNS


@dataclass(frozen=True, slots=True)
class DnsComparison:
    consistency: DnsConsistency | None
    bogon_addresses: tuple[str, ...] = ()
    reason: str = ""


def compare_dns(
    probe_addresses: list[str],
    probe_failure: str | None,
    control_dns: Mapping[str, Any],
    ip_info: Mapping[str, Any],
    tls_valid_addresses: Iterable[str],
    public_networks: tuple[IPNetwork, ...],
    *,
    probe_asns: Mapping[str, int] | None = None,
) -> DnsComparison:
    """OONI's DNS consistency, refined: equal answers, a shared ASN (the probe's own annotation of
    its answers, else the control's ip_info; the control's addresses from ip_info), or an address
    that served a valid certificate for the host is consistent; both failing the same way is
    consistent; a bogon answer is inconsistent."""
    bogons = tuple(a for a in probe_addresses if _safe_is_bogon(a, public_networks))
    if not control_dns:
        if bogons:
            return DnsComparison("inconsistent", bogons, "bogon answer (no control)")
        return DnsComparison(None, (), "no control DNS")
    control_addresses = [str(a) for a in control_dns.get("addrs") or []]
    control_failure = control_dns.get("failure")
    if not probe_addresses:
        if probe_failure is not None and probe_failure == control_failure:
            return DnsComparison("consistent", (), f"both failed: {probe_failure}")
        return DnsComparison(
            "inconsistent", (), f"probe {probe_failure}, control {control_failure}"
        )
    control_bogons = [a for a in control_addresses if _safe_is_bogon(a, public_networks)]
    if bogons and (not control_addresses or len(control_bogons) < len(control_addresses)):
        return DnsComparison("inconsistent", bogons, "bogon answer")
    if set(probe_addresses) & set(control_addresses):
        return DnsComparison("consistent", (), "same addresses")
    probe_asns = probe_asns or {}
    probe_side = _known({probe_asns.get(a) or _asn(ip_info, a) for a in probe_addresses})
    control_side = _known({_asn(ip_info, a) for a in control_addresses})
    shared = probe_side & control_side
    if shared:
        return DnsComparison("consistent", (), f"same AS (AS{min(shared)})")
    valid = set(tls_valid_addresses) & set(probe_addresses)
    if valid:
        return DnsComparison("consistent", (), f"valid certificate from {sorted(valid)[0]}")
    if any(int((ip_info.get(a) or {}).get("flags") or 0) & 8 for a in probe_addresses):
        return DnsComparison("consistent", (), "control found a valid certificate there")
    if probe_side and control_side:
        probe_label = ", ".join(f"AS{n}" for n in sorted(probe_side))
        control_label = ", ".join(f"AS{n}" for n in sorted(control_side))
        return DnsComparison(
            "inconsistent",
            (),
            f"different addresses in a different AS (probe {probe_label}, control {control_label})",
        )
    return DnsComparison("inconsistent", (), "different addresses")


def _safe_is_bogon(ip: str, networks: tuple[IPNetwork, ...]) -> bool:
    try:
        return is_bogon(ip, networks)
    except ValueError:
        return False


def _known(asns: set[int | None]) -> set[int]:
    # AS 0 is OONI's "unknown"; it must never make two addresses look alike.
    return {asn for asn in asns if asn}


def _asn(ip_info: Mapping[str, Any], address: str) -> int | None:
    entry = ip_info.get(address) or {}
    asn = entry.get("asn")
    return int(asn) if isinstance(asn, int) else None


# ---------------------------------------------------------------- HTTP


@dataclass(frozen=True, slots=True)
class HttpComparison:
    status_code_match: bool | None
    body_length_match: bool | None
    headers_match: bool | None
    title_match: bool | None
    body_hash_match: bool | None = None
    # None when not computed: only when the hash, lengths and titles leave same_page open.
    simhash_close: bool | None = None
    reasons: tuple[str, ...] = field(default_factory=tuple)

    @property
    def same_page(self) -> bool:
        """Whether the probe saw the control's page; a little drift (dynamic content) is allowed."""
        if self.body_hash_match:
            return True
        if self.status_code_match is False:
            return False
        if self.body_length_match or self.title_match or self.simhash_close:
            return True
        # Nothing comparable in body or title (both empty): fall back on OONI's header test.
        return (
            self.body_length_match is None and self.title_match is None and bool(self.headers_match)
        )


def compare_http(
    probe_response: HttpResponse,
    control_http: Mapping[str, Any],
    control_extra: Mapping[str, Any] | None = None,
) -> HttpComparison:
    """Compare the probe's final response with the control's (OONI's four tests, plus hashes)."""
    control_extra = control_extra or {}
    body = probe_response.get("body")
    body_text = body if isinstance(body, str) else ""
    probe_length = probe_response.get("body_length")
    if not isinstance(probe_length, int):
        probe_length = len(body_text.encode("utf-8"))
    body_hash_match = None
    control_hash = control_extra.get("body_sha256")
    if control_hash and body_text and not probe_response.get("body_is_truncated"):
        body_hash_match = hashlib.sha256(body_text.encode("utf-8")).hexdigest() == control_hash
    status_code_match = compare_status_codes(probe_response.get("code"), control_http.get("status_code"))
    body_length_match = compare_body_lengths(
        probe_length,
        control_http.get("body_length"),
        bool(probe_response.get("body_is_truncated")),
    )
    title_match = compare_titles(probe_response.get("title"), control_http.get("title"))
    simhash_close = None
    # The simhash (~0.15 ms a page) is computed only when same_page depends on it.
    simhash_decides = (
        not body_hash_match
        and status_code_match is not False
        and not (body_length_match or title_match)
    )
    control_simhash = control_extra.get("body_simhash")
    if simhash_decides and control_simhash and len(body_text) >= SIMHASH_MIN_TEXT:
        try:
            distance = simhash_distance(text_simhash(body_text), str(control_simhash))
            simhash_close = distance <= SIMHASH_MAX_DISTANCE
        except ValueError:
            simhash_close = None
    return HttpComparison(
        status_code_match=status_code_match,
        body_length_match=body_length_match,
        headers_match=compare_headers(
            probe_response.get("headers") or {}, control_http.get("headers") or {}
        ),
        title_match=title_match,
        body_hash_match=body_hash_match,
        simhash_close=simhash_close,
    )


def compare_status_codes(probe_code: Any, control_code: Any) -> bool | None:
    if not isinstance(probe_code, int) or not isinstance(control_code, int) or control_code <= 0:
        return None
    return probe_code == control_code


def compare_body_lengths(
    probe_length: Any, control_length: Any, probe_truncated: bool = False
) -> bool | None:
    if (
        not isinstance(probe_length, int)
        or not isinstance(control_length, int)
        or control_length < 0
    ):
        return None
    if probe_truncated and control_length >= probe_length:
        # A truncated probe body only says "at least this long".
        return True
    if probe_length == control_length:
        return True
    shorter, longer = sorted((probe_length, control_length))
    if longer == 0:
        return True
    return shorter / longer > BODY_PROPORTION_THRESHOLD


def compare_headers(
    probe_headers: Mapping[str, Any], control_headers: Mapping[str, Any]
) -> bool | None:
    if not probe_headers and not control_headers:
        return None
    probe_uncommon = {name.lower() for name in probe_headers} - COMMON_HEADERS
    control_uncommon = {name.lower() for name in control_headers} - COMMON_HEADERS
    if not control_uncommon:
        return not probe_uncommon
    return bool(probe_uncommon & control_uncommon)


def title_words(title: Any) -> set[str]:
    if not isinstance(title, str):
        return set()
    return {w.casefold() for w in _WORD.findall(title) if len(w) >= TITLE_WORD_MIN_LENGTH}


def compare_titles(probe_title: Any, control_title: Any) -> bool | None:
    probe_words, control_words = title_words(probe_title), title_words(control_title)
    if not probe_words and not control_words:
        return None
    if not probe_words or not control_words:
        return False
    # Dynamic titles ("News — 25 November") keep most of their long words.
    shared = len(probe_words & control_words)
    return shared * 2 >= min(len(probe_words), len(control_words))


# Simhash counts, per bit, the words whose hash has it set. Each hash is spread into 64 lanes of
# 32 bits of one big integer, so one multiply-add per word replaces 64 additions (5-10x faster).
_LANE_BITS = 32
_LANE_COUNT = 64
_LANES_BYTES = _LANE_BITS * _LANE_COUNT // 8
_LANES = struct.Struct(f"<{_LANE_COUNT}I")
# A byte's 8 bits as 8 little-endian 32-bit lanes: a hash's spread is 8 of these joined.
_SPREAD_BYTE = [
    b"".join(((byte >> i) & 1).to_bytes(_LANE_BITS // 8, "little") for i in range(8))
    for byte in range(256)
]


@lru_cache(maxsize=65536)
def _spread_word(word: str) -> int:
    # Pages share most words (markup, common language): hashing each once per process pays.
    digest = hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest()
    # The digest is the hash big-endian: its last byte holds bits 0-7, the lowest lanes.
    return int.from_bytes(b"".join([_SPREAD_BYTE[byte] for byte in reversed(digest)]), "little")


# In ASCII text \w is [A-Za-z0-9_]: turning every other character into a space and splitting
# gives _WORD's words, in order, in a third of the time (helper and probe hash every page).
# The table casefolds too (ASCII's casefold is lower), and runs on bytes: one C pass.
_ASCII_WORD_BYTES = bytes(
    ord(chr(code).lower()) if code < 128 and (chr(code).isalnum() or code == ord("_")) else 32
    for code in range(256)
)


def simhash_words(text: str) -> list[str]:
    """The casefolded words (runs of word characters) a simhash counts."""
    if text.isascii():
        # str words, not bytes: a dict of str keys (the Counter) looks them up faster.
        return text.encode("ascii").translate(_ASCII_WORD_BYTES).decode("ascii").split()
    # Casefolding may turn some text ASCII ("ß" is "ss"): the regex finds the same words there.
    return _WORD.findall(text.casefold())


def text_simhash(text: str) -> str:
    """64-bit simhash of a text's words (hex), shared by the helper and the analysis."""
    words = simhash_words(text)
    counts = Counter(words)
    lanes = sum(map(operator.mul, counts.values(), map(_spread_word, counts)))
    # Each lane counts words, so fits 32 bits short of a 4 GB text; a longer one carries into
    # the next lane, as shifting did, and its last lane is then cut to 32 bits as masking did.
    size = max(_LANES_BYTES, (lanes.bit_length() + 7) // 8)
    half = len(words) // 2
    result = 0
    for bit, weight in enumerate(_LANES.unpack_from(lanes.to_bytes(size, "little"))):
        # A bit is set when more of the words' weight has it set than not.
        if weight > half:
            result |= 1 << bit
    return f"{result:016x}"


def simhash_distance(first: str, second: str) -> int:
    return (int(first, 16) ^ int(second, 16)).bit_count()
