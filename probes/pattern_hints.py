"""Cheap necessary conditions for a fingerprint to match, read once from its pattern; pure.

A case-insensitive regex on Cyrillic text cannot use the regex engine's fast literal scan, and
costs 50-200 µs per page (measured on the benchmark's 2-8 KB pages). Most pages are ASCII, and
`str.isascii()` is free (CPython stores it with the string): a pattern that can only match a
non-ASCII character is skipped on them, with the same result as running it.
"""

from __future__ import annotations

import functools
import importlib
import re
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


@functools.cache
def regex_needs_non_ascii(regex: re.Pattern[str]) -> bool:
    """True when every match of `regex` contains a non-ASCII character (so ASCII text cannot match)."""
    if sre_parser is None or not isinstance(regex.pattern, str):
        return False
    try:
        parsed = sre_parser.parse(regex.pattern, regex.flags)
    except (re.error, TypeError, ValueError):
        return False
    return _sequence_needs_non_ascii(list(parsed), parsed.state.flags)


@functools.cache
def required_ascii_run(regex: re.Pattern[str]) -> tuple[str, bool] | None:
    """A run of ASCII letters every match contains, and whether it is compared case-blind.

    Only top-level literals count (a sequence's items all take part in a match). On ASCII text a
    case-blind run is found in `text.lower()`, where `in` is a fast substring scan.
    """
    if sre_parser is None or not isinstance(regex.pattern, str):
        return None
    try:
        parsed = sre_parser.parse(regex.pattern, regex.flags)
    except (re.error, TypeError, ValueError):
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
    if sre_parser is None or not isinstance(regex.pattern, str):
        return None
    try:
        parsed = sre_parser.parse(regex.pattern, regex.flags)
    except (re.error, TypeError, ValueError):
        return None
    runs = _sequence_runs(list(parsed))
    if runs is None:
        return None
    if parsed.state.flags & re.IGNORECASE:
        return tuple(run.lower() for run in runs), True
    return runs, False


def _sequence_runs(items: list[tuple[Any, Any]]) -> tuple[str, ...] | None:
    # Every item of a sequence takes part in a match: any one item's runs are required.
    choices: list[tuple[str, ...]] = []
    run = ""
    for op, value in items + [(None, None)]:
        if op is sre_constants.LITERAL and value < 128:
            run += chr(value)
            continue
        if run:
            choices.append((run,))
            run = ""
        inner = _item_runs(op, value)
        if inner is not None:
            choices.append(inner)
    eligible = [runs for runs in choices if min(map(len, runs)) >= _MIN_RUN]
    if not eligible:
        return None
    return max(eligible, key=lambda runs: (min(map(len, runs)), -len(runs)))


def _item_runs(op: Any, value: Any) -> tuple[str, ...] | None:
    if op is sre_constants.SUBPATTERN:
        _, add_flags, del_flags, sub = value
        if (add_flags | del_flags) & re.IGNORECASE:
            return None  # a local case rule: the runs' comparison would differ
        return _sequence_runs(list(sub))
    if op is sre_constants.BRANCH:
        _, alternatives = value
        branch_runs: list[str] = []
        for branch in alternatives:
            runs = _sequence_runs(list(branch))
            if runs is None:
                return None  # a branch that needs no run: the alternation needs none
            branch_runs.extend(runs)
        return tuple(dict.fromkeys(branch_runs))
    if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT):
        low, _, sub = value
        return _sequence_runs(list(sub)) if low >= 1 else None
    if op is sre_constants.ATOMIC_GROUP:
        return _sequence_runs(list(value))
    return None


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

    __slots__ = ("body", "title", "_normalized_body", "_normalized_title", "_lowered_body")

    def __init__(self, body: str, title: str | None) -> None:
        self.body = body
        self.title = title
        self._normalized_body: str | None = None
        self._normalized_title: str | None = None
        self._lowered_body: str | None = None

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

    def contains_any(self, runs: tuple[str, ...], caseless: bool) -> bool:
        """Whether the ASCII body contains one of `runs` (lower case when `caseless`)."""
        haystack = self.body
        if caseless:
            if self._lowered_body is None:
                self._lowered_body = self.body.lower()
            haystack = self._lowered_body
        return any(run in haystack for run in runs)

    @property
    def normalized_title(self) -> str:
        if self._normalized_title is None:
            self._normalized_title = normalize_text(self.title) if self.title else ""
        return self._normalized_title
