"""The shortcuts that skip fingerprint regexes give the same answers as running them."""

from __future__ import annotations

import re

import pytest

from probes.analysis_compare import simhash_words
from probes.fingerprints import default_fingerprints, match_http_blockpage
from probes.pattern_hints import (
    PageText,
    case_exceptions,
    casefold_exceptions,
    odd_characters,
    regex_needs_non_ascii,
    required_ascii_run,
    required_ascii_runs,
    required_runs,
)


@pytest.mark.parametrize(
    ("pattern", "needs"),
    [
        ("(?i)(ресурс|сайт)\\s+(был\\s+)?заблокирован", True),
        ("б+", True),
        ("(?i)(?:б)?x", False),  # optional: "x" alone matches
        ("(?i)a|б", False),  # one branch is ASCII
        ("(?i)б{0,2}", False),
        ("(?i)ſ", False),  # the long s matches "s" case-blind
        ("(?i)\u212a", False),  # the Kelvin sign matches "k"
        ("(?i)internet\\s?positif", False),
    ],
)
def test_regex_needs_non_ascii(pattern, needs):
    assert regex_needs_non_ascii(re.compile(pattern)) is needs
    if not needs:
        return
    assert all(not re.search(pattern, text) for text in ("", "plain ascii page", "Б" .encode().hex()))


def test_required_ascii_run():
    assert required_ascii_run(re.compile("(?i)Internet\\s?positif")) == ("internet", True)
    assert required_ascii_run(re.compile("<iframe[^>]+src")) == ("<iframe", False)
    assert required_ascii_run(re.compile("(?i)(this|that) page")) == (" page", True)
    assert required_ascii_run(re.compile("a(b)c")) is None  # no run of 4


BODIES = [
    "<html><title>News</title><p>Internet Positif blocks this</p></html>",
    "<html><p>This website has been blocked by order.</p></html>",
    "<html><p>" + "Lorem ipsum dolor sit amet. " * 300 + "</p></html>",
    "<html><h1>Доступ к запрашиваемому ресурсу ограничен</h1></html>",
    "<html><p>Ресурс заблокирован</p></html>",
    "<html><p>The requested page is restricted</p><article>x</article></html>",
    '<iframe width=1 src="http://10.10.34.35/block"></iframe>',
    "<html><p>INTERNETPOSITIF</p></html>",
]


def _normalize(text: str) -> str:
    return " ".join(text.split()).casefold()


def _naive_match(body: str, title: str):
    """The fingerprint order, false positives first, every pattern tried: the reference."""
    database = default_fingerprints()
    for entry in database.false_positives:
        haystack = _normalize(body) if entry.pattern_kind == "body_substring" else body
        if entry.regex.search(haystack):
            return None
    for fingerprint in database.blockpages:
        if fingerprint.kind != "http_blockpage":
            continue
        if fingerprint.max_body_length is not None and len(body) > fingerprint.max_body_length:
            continue
        kind = fingerprint.pattern_kind
        if (
            (kind == "body_substring" and _normalize(fingerprint.pattern) in _normalize(body))
            or (kind == "body_regex" and fingerprint.regex.search(body))
            or (kind == "title" and _normalize(title) == _normalize(fingerprint.pattern))
        ):
            return fingerprint.id
    return None


@pytest.mark.parametrize("body", BODIES)
@pytest.mark.parametrize("title", ["News", "Доступ ограничен"])
def test_shortcuts_agree_with_trying_every_pattern(body, title):
    match = match_http_blockpage(default_fingerprints(), body, {}, title)
    expected = _naive_match(body, title)
    assert (match.id if match else None) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Hello, World! foo_bar baz-qux 42x\tTAB\x1c\x1dsep\x00nul",
        "<p>The  QUICK brown\nfox&amp;dogs; __init__ 3.14</p>",
        "Кириллица и latin_words вместе",  # not ASCII: the regex path
        "",
    ],
)
def test_simhash_words_are_the_word_regex_words(text):
    assert simhash_words(text) == re.findall(r"\w+", text.casefold())


@pytest.mark.parametrize(
    ("pattern", "runs"),
    [
        (
            "(?i)(this|the requested) (web ?site|site|page|url|resource) (has been|is) (blocked|restricted)",
            (("blocked", "restricted"), True),
        ),
        ("x(abcde|fghij)", (("abcde", "fghij"), False)),
        ("(?:abcd)+", (("abcd",), False)),
        ("(?:abcd)*x", None),  # the group may match nothing
        ("(?i)(abcde|f)", None),  # one branch needs no run of 4
        ("(?-i:ABCD)efgh", (("efgh",), False)),  # a local case rule: its group makes no claim
        ("(?i)Internet\\s?positif", (("internet",), True)),
        ("a(b)c", None),
    ],
)
def test_required_ascii_runs(pattern, runs):
    assert required_ascii_runs(re.compile(pattern)) == runs


ALTERNATION_BODIES = [
    "<p>This site is blocked.</p>",
    "<p>THE REQUESTED RESOURCE HAS BEEN RESTRICTED</p>",
    "<p>the requested url is  blocked</p>",  # two spaces: no match, though both runs are there
    "<p>blocked restricted</p>",
    "<p>Nothing to see</p>",
    "<p>" + "Lorem ipsum dolor sit amet. " * 100 + "this page is restricted</p>",
]


@pytest.mark.parametrize("body", ALTERNATION_BODIES)
def test_alternation_runs_agree_with_trying_every_pattern(body):
    match = match_http_blockpage(default_fingerprints(), body, {}, "News")
    expected = _naive_match(body, "News")
    assert (match.id if match else None) == expected


def test_a_page_without_any_run_skips_the_regex():
    page = PageText("<p>Nothing to see</p>", None)
    regex = re.compile("(?i)(this|the requested) (site|page) (has been|is) (blocked|restricted)")
    assert page.may_match(regex) is False
    assert PageText("<p>It is BLOCKED</p>", None).may_match(regex) is True


@pytest.mark.parametrize("body", [b for b in BODIES + ALTERNATION_BODIES if b.isascii()])
def test_may_match_is_false_only_where_the_regex_finds_nothing(body):
    page = PageText(body, None)
    database = default_fingerprints()
    regexes = [f.regex for f in database.blockpages if f.pattern_kind == "body_regex"]
    regexes += [entry.regex for entry in database.false_positives]
    for regex in regexes:
        assert regex is not None
        if not page.may_match(regex):
            assert regex.search(body) is None, regex.pattern


# Not ASCII: runs of any characters, read through lower() only where the engine agrees.
NON_ASCII_BODIES = [
    "<p>Доступ к ресурсу ОГРАНИЧЕН</p>",
    "<p>ДОСТУП ограничен</p>",
    "<p>дᲂступ ограничен</p>",  # the rounded o: the regex engine takes it for "о", lower() does not
    "<p>ресурс заблᲂкирован</p>",
    "<p>Ресурс был заблокирован</p>",
    "<p>ресурс шекᲅелген</p>",
    "<p>Новости дня: погода, курс валют</p>",
    "<p>internet posıtıf ü</p>",  # the dotless i
    "<p>THİS SITE IS BLOCKED é</p>",  # the dotted capital I
    "<p>This ſite is reſtricted é</p>",  # the long s
    "<p>ДОСТУП К ЗАПРАШИВАЕМОМУ\nРЕСУРСУ ОГРАНИЧЕН</p>",
    "<p>Доступ к запрашиваемᲂму ресурсу ограничен</p>",  # casefold() makes the rounded o an o
    "<p>Ресурсқа қолжетімділік ШЕКТЕЛГЕН</p>",
]


@pytest.mark.parametrize("body", NON_ASCII_BODIES)
def test_non_ascii_runs_agree_with_trying_every_pattern(body):
    match = match_http_blockpage(default_fingerprints(), body, {}, "News")
    expected = _naive_match(body, "News")
    assert (match.id if match else None) == expected


@pytest.mark.parametrize("body", NON_ASCII_BODIES)
def test_may_contain_is_false_only_where_the_regex_finds_nothing(body):
    page = PageText(body, None)
    for fingerprint in default_fingerprints().blockpages:
        if fingerprint.pattern_kind != "body_regex" or fingerprint.regex is None:
            continue
        required = required_runs(fingerprint.regex)
        if required is None:
            continue
        odd = case_exceptions(frozenset("".join(run for runs in required[0] for run in runs)))
        if not page.may_contain(*required, odd):
            assert fingerprint.regex.search(body) is None, fingerprint.id


def test_required_runs_and_case_exceptions():
    assert required_runs(re.compile("(?i)(ресурс|сайт)\\s+(был\\s+)?заблокирован")) == (
        (("ресурс", "сайт"), ("заблокирован",)), True)
    assert required_runs(re.compile("Доступ\\s+ограничен")) == ((("Доступ",), ("ограничен",)), False)
    assert required_runs(re.compile("(?i)доступ\\s+(к\\s+[^<]{0,40}\\s+)?(ограничен|запрещ[её]н|заблокирован)")) == (
        (("доступ",), ("ограничен", "запрещ", "заблокирован")), True)
    assert required_runs(re.compile("(?i)İstanbul")) is None  # lower() makes two letters of İ
    assert case_exceptions(frozenset("во")) == "ᲀᲂ"
    assert case_exceptions(frozenset("ab")) == ""
    assert set(case_exceptions(frozenset("is"))) >= {"ı", "İ", "ſ"}
    assert set(case_exceptions(frozenset("σ"))) >= {"Σ", "ς"}
    page = PageText("<p>Сайт ЗАБЛОКИРОВАН</p>", None)
    odd = case_exceptions(frozenset("сайтограничензаблокирован"))
    assert page.may_contain((("заблокирован",),), True, odd)
    assert not page.may_contain((("заблокирован",),), False, odd)
    assert not page.may_contain((("сайт",), ("ограничен",)), True, odd)  # one group lacking suffices
    assert not PageText("<p>Погода</p>", None).may_contain((("заблокирован",),), True, odd)
    assert PageText("<p>Пᲂгода</p>", None).may_contain((("заблокирован",),), True, odd)  # odd: no claim


def test_may_hold_word_reads_lower_case_only_where_casefold_agrees():
    assert casefold_exceptions("запрашиваемому") == "ᲀᲂ"  # the rounded в and о
    assert "\u03a3" in casefold_exceptions("σ")
    odd = casefold_exceptions("запрашиваемому")
    assert PageText("ЗАПРАШИВАЕМОМУ", None).may_hold_word("запрашиваемому", odd)
    assert PageText("запрашиваемᲂму", None).may_hold_word("запрашиваемому", odd)
    assert not PageText("новости дня", None).may_hold_word("запрашиваемому", odd)
    assert set(odd_characters(frozenset("во"), ("запрашиваемому",))) == set("ᲀᲂ")


def test_every_code_point_is_all_of_unicode_in_order() -> None:
    import sys

    from probes.pattern_hints import every_code_point

    text = every_code_point()
    assert len(text) == sys.maxunicode + 1
    assert text == "".join(map(chr, range(sys.maxunicode + 1)))
