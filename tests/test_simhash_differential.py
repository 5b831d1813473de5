"""text_simhash gives, for every text, the hex the implementation before it gave (issue 11).

The probe and the helper compare simhashes, and stored measurements keep them: a faster
implementation must agree bit for bit. The oracle below is the former code, copied verbatim."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections import Counter
from functools import lru_cache

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.pages import (
    BLOCKPAGE_HTML,
    render_doctored_page,
    render_dynamic_page,
    render_large_page,
    render_site_page,
)
from lab.policies import bulk_hostname
from probes.analysis_compare import simhash_words, text_simhash
from tests.conftest import SHARED

OONI_REAL = SHARED / "data" / "ooni-real"

# -- the oracle: text_simhash before issue 11 ----------------------------------------------------
_WORD = re.compile(r"\w+", re.UNICODE)
_LANE_BITS = 32
_LANE_MASK = (1 << _LANE_BITS) - 1
_SPREAD_BYTE = [sum(((byte >> i) & 1) << (_LANE_BITS * i) for i in range(8)) for byte in range(256)]


def _spread(value: int) -> int:
    spread = 0
    for index in range(8):
        spread |= _SPREAD_BYTE[(value >> (8 * index)) & 0xFF] << (_LANE_BITS * 8 * index)
    return spread


@lru_cache(maxsize=65536)
def _spread_word(word: str) -> int:
    return _spread(
        int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "big")
    )


_ASCII_NON_WORD = str.maketrans(
    {chr(code): " " for code in range(128) if not (chr(code).isalnum() or chr(code) == "_")}
)


def old_simhash_words(text: str) -> list[str]:
    folded = text.casefold()
    if folded.isascii():
        return folded.translate(_ASCII_NON_WORD).split()
    return _WORD.findall(folded)


def old_text_simhash(text: str) -> str:
    counts = Counter(old_simhash_words(text))
    lanes = 0
    for word, count in counts.items():
        lanes += count * _spread_word(word)
    total = sum(counts.values())
    result = 0
    for bit in range(64):
        if 2 * ((lanes >> (_LANE_BITS * bit)) & _LANE_MASK) > total:
            result |= 1 << bit
    return f"{result:016x}"


# -- inputs ---------------------------------------------------------------------------------------
def _lab_pages() -> list[str]:
    pages = [BLOCKPAGE_HTML]
    for number in (1, 2, 3, 17, 250, 1999):
        host = bulk_hostname(number)
        pages += [render_site_page(host, "/"), render_dynamic_page(host, "/news?id=1")]
        pages.append(render_doctored_page(host, "/"))
    pages.append(render_large_page(bulk_hostname(5)).decode("utf-8"))
    return pages


def _real_bodies() -> list[str]:
    bodies: list[str] = []
    for path in sorted(OONI_REAL.glob("**/measurements.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            test_keys = json.loads(line).get("test_keys") or {}
            for request in test_keys.get("requests") or []:
                body = (request.get("response") or {}).get("body")
                if isinstance(body, dict) and body.get("format") == "base64":
                    body = base64.b64decode(body["data"]).decode("utf-8", errors="replace")
                if isinstance(body, str):
                    bodies.append(body)
    return bodies


@pytest.mark.parametrize("page", _lab_pages())
def test_lab_pages_hash_as_before(page: str) -> None:
    assert text_simhash(page) == old_text_simhash(page)


def test_real_bodies_hash_as_before() -> None:
    bodies = _real_bodies()
    if not bodies:
        pytest.skip(f"no real OONI measurements under {OONI_REAL}")
    for body in bodies:
        assert text_simhash(body) == old_text_simhash(body)
        # And halves of them: a cut body starts mid-word and mid-character.
        assert text_simhash(body[len(body) // 3 :]) == old_text_simhash(body[len(body) // 3 :])


@pytest.mark.parametrize(
    "text",
    ["", " ", "_", "ß", "ﬁ", "İ", "K", "Ǆ", "a" * 5000, "word " * 3000, "\x00\x7f\x80", "ǅa ǆb"],
)
def test_edge_texts_hash_as_before(text: str) -> None:
    assert text_simhash(text) == old_text_simhash(text)
    assert simhash_words(text) == old_simhash_words(text)


_WORDY = st.text(alphabet=st.sampled_from("abcXYZ09_ -.<>/\n\téßİКириллица日本"), max_size=400)


@settings(max_examples=400, deadline=None)
@given(st.one_of(st.text(max_size=300), st.text(alphabet=st.characters(max_codepoint=127)), _WORDY))
def test_any_text_hashes_as_before(text: str) -> None:
    assert text_simhash(text) == old_text_simhash(text)
    assert simhash_words(text) == old_simhash_words(text)
