"""Cheap necessary conditions for a fingerprint to match, read once from its pattern; pure.

A case-insensitive regex on Cyrillic text cannot use the regex engine's fast literal scan, and
costs 50-200 µs per page (measured on the benchmark's 2-8 KB pages). Most pages are ASCII, and
`str.isascii()` is free (CPython stores it with the string): a pattern that can only match a
non-ASCII character is skipped on them, with the same result as running it.
"""

from __future__ import annotations

import array
import functools
import importlib
import re
import sys
from collections.abc import Iterable
from typing import Any

sre_constants: Any
sre_parser: Any
try:  # The regex parser is private (re._parser since 3.11); without it every pattern is simply run.
    sre_constants = importlib.import_module("re._constants")
    sre_parser = importlib.import_module("re._parser")
except ImportError:  # pragma: no cover - other Python versions
    sre_constants = sre_parser = None

_ASCII_CHARACTERS = [chr(code) for code in range(128)]
# Shorter runs are found almost everywhere and would not spare a search.
_MIN_RUN = 4


def _parsed(regex: re.Pattern[str]) -> Any:
    """The regex's parse tree; None where it cannot be read here (no parser, bytes, refused)."""
    if sre_parser is None or not isinstance(regex.pattern, str):
        return None
    try:
        return sre_parser.parse(regex.pattern, regex.flags)
    except (re.error, TypeError, ValueError):
        return None


@functools.cache
def regex_needs_non_ascii(regex: re.Pattern[str]) -> bool:
    """True when every match of `regex` contains a non-ASCII character (so ASCII text cannot match)."""
    parsed = _parsed(regex)
    if parsed is None:
        return False
    return _sequence_needs_non_ascii(list(parsed), parsed.state.flags)


@functools.cache
def required_ascii_run(regex: re.Pattern[str]) -> tuple[str, bool] | None:
    """A run of ASCII letters every match contains, and whether it is compared case-blind.

    Only top-level literals count (a sequence's items all take part in a match). On ASCII text a
    case-blind run is found in `text.lower()`, where `in` is a fast substring scan.
    """
    parsed = _parsed(regex)
    if parsed is None:
        return None
    caseless = bool(parsed.state.flags & re.IGNORECASE)
    best, run = "", ""
    for op, value in list(parsed) + [(None, None)]:
        if op is sre_constants.LITERAL and value < 128:
            run += chr(value)
            continue
        best, run = max(best, run, key=len), ""
    if len(best) < _MIN_RUN:
        return None
    return (best.lower(), True) if caseless else (best, False)


@functools.cache
def required_ascii_runs(regex: re.Pattern[str]) -> tuple[tuple[str, ...], bool] | None:
    """Runs of ASCII characters of which every match contains one, and whether case-blind.

    Looks into groups, required repeats and alternations (one run from each branch): the
    most selective choice is kept, the one whose shortest run is longest. None when no choice
    has runs of at least _MIN_RUN characters.
    """
    parsed = _parsed(regex)
    if parsed is None:
        return None
    runs = _sequence_runs(list(parsed), 128)
    if runs is None:
        return None
    if parsed.state.flags & re.IGNORECASE:
        return tuple(run.lower() for run in runs), True
    return runs, False


@functools.cache
def required_runs(regex: re.Pattern[str]) -> tuple[tuple[tuple[str, ...], ...], bool] | None:
    """For pages that are not ASCII: groups of runs (of any characters) such that every match
    contains one run of each group, and whether case-blind. All groups, not only the best:
    "доступ" is on many Russian pages, "доступ" with "ограничен" or "заблокирован" on few.

    Case-blind runs hold true only where `str.lower()` agrees with the regex engine, which
    PageText.may_contain checks (case_exceptions).
    """
    parsed = _parsed(regex)
    if parsed is None:
        return None
    groups = tuple(dict.fromkeys(_sequence_choices(list(parsed), sys.maxunicode + 1)))
    if not groups:
        return None
    if parsed.state.flags & re.IGNORECASE:
        if any(len(character.lower()) != 1 for runs in groups for run in runs for character in run):
            return None  # a letter lower() turns into two (the dotted capital I): no claim
        return tuple(tuple(run.lower() for run in runs) for runs in groups), True
    return groups, False


def _sequence_runs(items: list[tuple[Any, Any]], limit: int) -> tuple[str, ...] | None:
    # The most selective of a sequence's required choices: its shortest run is the longest.
    choices = _sequence_choices(items, limit)
    if not choices:
        return None
    return max(choices, key=lambda runs: (min(map(len, runs)), -len(runs)))


def _sequence_choices(items: list[tuple[Any, Any]], limit: int) -> list[tuple[str, ...]]:
    """Every choice of runs (one of which a match contains) the sequence requires."""
    # Every item of a sequence takes part in a match: each item's choices are required.
    choices: list[tuple[str, ...]] = []
    run = ""
    for op, value in items + [(None, None)]:
        if op is sre_constants.LITERAL and value < limit:
            run += chr(value)
            continue
        if run:
            choices.append((run,))
            run = ""
        choices += _item_choices(op, value, limit)
    return [runs for runs in choices if min(map(len, runs)) >= _MIN_RUN]


def _item_choices(op: Any, value: Any, limit: int) -> list[tuple[str, ...]]:
    if op is sre_constants.SUBPATTERN:
        _, add_flags, del_flags, sub = value
        if (add_flags | del_flags) & re.IGNORECASE:
            return []  # a local case rule: the runs' comparison would differ
        return _sequence_choices(list(sub), limit)
    if op is sre_constants.BRANCH:
        _, alternatives = value
        branch_runs: list[str] = []
        for branch in alternatives:
            runs = _sequence_runs(list(branch), limit)
            if runs is None:
                return []  # a branch that needs no run: the alternation needs none
            branch_runs.extend(runs)
        return [tuple(dict.fromkeys(branch_runs))]
    if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT):
        low, _, sub = value
        return _sequence_choices(list(sub), limit) if low >= 1 else []
    if op is sre_constants.ATOMIC_GROUP:
        return _sequence_choices(list(value), limit)
    return []


@functools.cache
def case_exceptions(characters: frozenset[str]) -> str:
    """The characters a case-blind regex takes for one of `characters` (lower case) although
    their `lower()` is not that character (the rounded Cyrillic ve for "в", the dotless i for
    "i", the capital sigma that lowers to a final sigma), sorted, in one string.
    """
    learn_case_exceptions(characters)
    return "".join(sorted(set().union(*(_CASE_EXCEPTIONS[character] for character in characters))))


# Lower-case character -> its exceptions, learnt from the regex engine itself.
_CASE_EXCEPTIONS: dict[str, frozenset[str]] = {}


def every_code_point() -> str:
    """All of Unicode in one 4 MB string, built from bytes: joining 1.1 million one-character
    strings would first hold them all (~100 MB of peak RSS in the probe, once)."""
    return array.array("I", range(sys.maxunicode + 1)).tobytes().decode("utf-32-le", "surrogatepass")


def learn_case_exceptions(characters: Iterable[str]) -> None:
    """Ask the regex engine, over every code point at once (~0.3 s, a 4 MB string let go after),
    which characters it matches case-blind with each of `characters` not yet learnt."""
    unknown = sorted(set(characters) - _CASE_EXCEPTIONS.keys())
    if not unknown:
        return
    everything = every_code_point()
    candidates = set(re.findall("[" + "".join(map(re.escape, unknown)) + "]", everything, re.IGNORECASE))
    del everything
    for character in unknown:
        _CASE_EXCEPTIONS[character] = frozenset(
            found
            for found in candidates
            if (found.lower() != character or found == "\u03a3")
            and re.fullmatch(re.escape(character), found, re.IGNORECASE)
        )


@functools.cache
def odd_characters(letters: frozenset[str], words: tuple[str, ...]) -> str:
    """One string of the case_exceptions of `letters` (case-blind regex runs) and the
    casefold_exceptions of `words` (substring fingerprints): a page holding none of them can be
    read through lower() for all of them."""
    odd = set(case_exceptions(letters)).union(*map(casefold_exceptions, words))
    return "".join(sorted(odd))


@functools.cache
def casefold_exceptions(word: str) -> str:
    """The characters whose casefold() holds a letter of `word` but is not their lower() (the
    rounded Cyrillic letters for "в", "о"...; the capital sigma, which lower() may turn into a
    final sigma): where they are absent, casefolded text holds `word` only if lower-cased text
    does."""
    letters = set(word)
    return "".join(sorted(c for c in _casefold_differs() if letters & set(c.casefold())))


@functools.cache
def _casefold_differs() -> frozenset[str]:
    # Every code point once per process (~0.25 s): 297 characters in Python 3.11.
    differ = (c for c in map(chr, range(sys.maxunicode + 1)) if c.casefold() != c.lower())
    return frozenset(differ) | {"\u03a3"}


def text_needs_non_ascii(text: str) -> bool:
    """For substring fingerprints matched on casefolded text: casefolding keeps ASCII ASCII."""
    return not text.casefold().isascii()


def _sequence_needs_non_ascii(items: list[tuple[Any, Any]], flags: int) -> bool:
    # A sequence matches only if each of its items does: one item needing non-ASCII suffices.
    return any(_item_needs_non_ascii(op, value, flags) for op, value in items)


def _item_needs_non_ascii(op: Any, value: Any, flags: int) -> bool:
    if op is sre_constants.LITERAL:
        return value >= 128 and not _matches_some_ascii(value, flags & re.IGNORECASE)
    if op is sre_constants.SUBPATTERN:
        _, add_flags, del_flags, sub = value
        return _sequence_needs_non_ascii(list(sub), (flags | add_flags) & ~del_flags)
    if op is sre_constants.BRANCH:
        _, alternatives = value
        return all(_sequence_needs_non_ascii(list(branch), flags) for branch in alternatives)
    if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT):
        low, _, sub = value
        return low >= 1 and _sequence_needs_non_ascii(list(sub), flags)
    if op is sre_constants.ATOMIC_GROUP:
        return _sequence_needs_non_ascii(list(value), flags)
    # Character classes, categories, anchors, lookarounds, back references: no claim.
    return False


@functools.cache
def _matches_some_ascii(code: int, ignorecase: int) -> bool:
    # Ask the regex engine itself: case-insensitive matching has odd pairs (the Kelvin sign
    # matches "k", a long s matches "s"), and no table of ours should second-guess them.
    literal = re.compile(re.escape(chr(code)), ignorecase)
    return any(literal.fullmatch(character) for character in _ASCII_CHARACTERS)


def normalize_text(text: str) -> str:
    # Blockpage wording is matched regardless of case and line wrapping.
    return " ".join(text.split()).casefold()


@functools.cache
def normalized_pattern(pattern: str) -> str:
    return normalize_text(pattern)


class PageText:
    """A response's body and title, normalized only when a fingerprint needs it."""

    __slots__ = ("body", "title", "_normalized_body", "_normalized_title", "_lowered_body",
                 "_lower_agrees")

    def __init__(self, body: str, title: str | None) -> None:
        self.body = body
        self.title = title
        self._normalized_body: str | None = None
        self._normalized_title: str | None = None
        self._lowered_body: str | None = None
        # (the odd characters asked about, whether the body holds none of them)
        self._lower_agrees: tuple[str, bool] | None = None

    @property
    def normalized_body(self) -> str:
        if self._normalized_body is None:
            self._normalized_body = normalize_text(self.body) if self.body else ""
        return self._normalized_body

    def may_match(self, regex: re.Pattern[str]) -> bool:
        """False when the ASCII body cannot match: the regex needs a non-ASCII character or
        ASCII runs (one of them) the body lacks."""
        if regex_needs_non_ascii(regex):
            return False
        required = required_ascii_runs(regex)
        return required is None or self.contains_any(*required)

    def may_contain(self, groups: tuple[tuple[str, ...], ...], caseless: bool, odd: str) -> bool:
        """False when the body (of any characters) lacks every run of one of `groups`, as a
        regex reads them (required_runs). `odd`: at least the case_exceptions of their letters."""
        if caseless and not self.lower_agrees(odd):
            return True  # lower() would not say what the regex engine does: no claim
        return all(self.contains_any(runs, caseless) for runs in groups)

    def contains_any(self, runs: tuple[str, ...], caseless: bool) -> bool:
        """Whether the ASCII body contains one of `runs` (lower case when `caseless`)."""
        haystack = self.lowered_body if caseless else self.body
        return any(run in haystack for run in runs)

    def may_hold_word(self, word: str, odd: str) -> bool:
        """False when the normalized body cannot hold `word` (casefolded, without spaces):
        read in body.lower(), far cheaper than casefold() on text that is not ASCII. `odd`: at
        least the casefold_exceptions of `word`."""
        return not self.lower_agrees(odd) or word in self.lowered_body

    def lower_agrees(self, odd: str) -> bool:
        """The body holds none of the `odd` characters (asked once per page: one substring scan
        per character, where a character class search costs ~15 ns a character)."""
        if self._lower_agrees is None or self._lower_agrees[0] is not odd:
            self._lower_agrees = (odd, not any(character in self.body for character in odd))
        return self._lower_agrees[1]

    @property
    def lowered_body(self) -> str:
        if self._lowered_body is None:
            self._lowered_body = self.body.lower()
        return self._lowered_body

    @property
    def normalized_title(self) -> str:
        if self._normalized_title is None:
            self._normalized_title = normalize_text(self.title) if self.title else ""
        return self._normalized_title
