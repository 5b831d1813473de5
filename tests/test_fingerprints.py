"""Blockpage and interception-CA fingerprints: the shipped data loads, matches, and refuses bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from probes.fingerprints import (
    FingerprintFileError,
    load_fingerprints,
    match_dns_blockpage,
    match_http_blockpage,
    match_interception_ca,
    parse_distinguished_name,
)

DB = load_fingerprints()
KZ_BLOCKPAGE = (
    "<html><head><title>Внимание</title></head><body>"
    "<h1>Доступ к запрашиваемому ресурсу ограничен</h1></body></html>"
)


def test_shipped_data_loads_with_ids_and_sources() -> None:
    assert len(DB.blockpages) >= 8
    assert {ca.id for ca in DB.interception_cas} >= {
        "kz.qaznet_trust_network",
        "kz.security_certificate",
        "kz.isca_root",
        "kz.isca_intermediate",
    }
    for fingerprint in DB.blockpages:
        assert fingerprint.source and fingerprint.confidence in ("high", "medium", "low")


@pytest.mark.parametrize(
    ("body", "expected_id"),
    [
        (KZ_BLOCKPAGE, "kz.phrase.requested_resource_restricted"),
        (
            "<p>Доступ к информационному ресурсу ограничен</p>",
            "kz.phrase.information_resource_restricted",
        ),
        ("<p>Сайтқа қолжетімділік шектелген</p>", "kz.phrase.kazakh_access_restricted"),
        ("<p>Ресурс   ЗАБЛОКИРОВАН</p>", "zz.phrase.resource_blocked_ru"),
        ('<iframe src="http://10.10.34.34/?type=Invalid"></iframe>', "ir.iframe_10_10_34_34"),
        ("<h2>This website has been blocked by order</h2>", "zz.phrase.site_blocked_en"),
    ],
)
def test_blockpage_bodies_match(body: str, expected_id: str) -> None:
    match = match_http_blockpage(DB, body, {}, None)
    assert match is not None and match.id == expected_id
    assert match.kind == "http_blockpage" and match.evidence


def test_phrase_heuristics_need_a_short_page() -> None:
    long_page = KZ_BLOCKPAGE + "<p>" + "новости " * 4000 + "</p>"
    assert match_http_blockpage(DB, long_page, {}, None) is None


def test_false_positive_list_is_checked_first() -> None:
    article = (
        "<article><p>Пользователи видят «Доступ к запрашиваемому ресурсу ограничен».</p></article>"
    )
    assert match_http_blockpage(DB, article, {}, None) is None
    akamai = "<h1>Access Denied</h1> This site has been blocked. Reference&#32;&#35;18.abc123"
    assert match_http_blockpage(DB, akamai, {}, None) is None


def test_header_and_title_fingerprints() -> None:
    by_header = match_http_blockpage(DB, "", [("location", "http://warning.rt.ru/x")], None)
    assert by_header is not None and by_header.id == "ru.rostelecom.warning_redirect"
    by_title = match_http_blockpage(DB, "<p>x</p>", {}, "  доступ   ОГРАНИЧЕН ")
    assert by_title is not None and by_title.matched_by == "title"


def test_ordinary_pages_do_not_match() -> None:
    assert (
        match_http_blockpage(DB, "<html><title>Azattyq</title><p>Новости</p></html>", {}, "Azattyq")
        is None
    )
    assert match_http_blockpage(DB, None, None, None) is None


def test_dns_blockpage_by_cidr() -> None:
    match = match_dns_blockpage(DB, ["203.0.113.5", "10.10.34.35"])
    assert (
        match is not None and match.id == "ir.dns_10_10_34_34" and "10.10.34.35" in match.evidence
    )
    single = match_dns_blockpage(DB, ["10.10.34.36"])
    assert single is not None and single.matched_by == "dns_address"
    assert match_dns_blockpage(DB, ["10.10.35.1", "not-an-ip"]) is None


def test_interception_ca_by_fingerprint_before_name() -> None:
    chain = [
        {"subject": "CN=google.com", "issuer": "CN=Security Certificate,C=KZ", "sha256": "ab" * 32},
        {
            "subject": "CN=Information Security Certification Authority CA,O=ISCA,C=KZ",
            "issuer": "CN=x",
            "sha256": "89107c8e50e029b7b5f4ff0ccd2956bcc9d0c8ba2bfb6a58374ed63a6b034a30",
        },
    ]
    match = match_interception_ca(DB, chain)
    assert match is not None
    assert (match.id, match.matched_by) == ("kz.isca_root", "sha256")
    assert match.as_dict()["issuer"] == "CN=Security Certificate,C=KZ"


def test_interception_ca_by_name() -> None:
    qaznet = [{"subject": "CN=Security Certificate,C=KZ", "issuer": "CN=Qaznet Trust Network,C=KZ"}]
    match = match_interception_ca(DB, qaznet)
    assert (
        match is not None and match.id == "kz.qaznet_trust_network" and match.matched_by == "issuer"
    )
    isca = [
        {"subject": "CN=a.kz", "issuer": "CN=Information Security Certification Authority,O=ISCA"}
    ]
    assert match_interception_ca(DB, isca).id == "kz.isca_root"  # type: ignore[union-attr]
    # The generic name alone, outside KZ, is not evidence.
    assert (
        match_interception_ca(DB, [{"subject": "CN=a", "issuer": "CN=Security Certificate,C=US"}])
        is None
    )
    assert match_interception_ca(DB, []) is None


def test_http_checks_are_the_http_fingerprints_in_order_with_their_prefilters() -> None:
    http = [f for f in DB.blockpages if f.kind == "http_blockpage"]
    assert [check.fingerprint for check in DB.http_checks] == http
    checks = {check.fingerprint.id: check for check in DB.http_checks}
    assert checks["kz.phrase.requested_resource_restricted"].needs_non_ascii  # Cyrillic phrase
    assert checks["zz.phrase.resource_blocked_ru"].needs_non_ascii  # Cyrillic regex
    site_blocked = checks["zz.phrase.site_blocked_en"]
    assert (site_blocked.needs_non_ascii, site_blocked.runs, site_blocked.caseless) == (
        False, ("blocked", "restricted"), True)
    assert checks["ru.rostelecom.warning_redirect"].runs is None  # a header: no body hint
    assert list(DB.ascii_http_checks) == [c for c in DB.http_checks if not c.needs_non_ascii]
    resource_blocked = checks["zz.phrase.resource_blocked_ru"]
    assert resource_blocked.text_runs == (("ресурс", "сайт"), ("заблокирован",))
    assert resource_blocked.text_caseless and set("заблокирован") <= DB.text_characters
    # A database made from others' parts works its checks out again.
    rebuilt = type(DB)(DB.blockpages[:3], DB.false_positives, DB.interception_cas)
    assert [c.fingerprint for c in rebuilt.http_checks] == [f for f in DB.blockpages[:3]
                                                            if f.kind == "http_blockpage"]
    assert rebuilt == type(DB)(DB.blockpages[:3], DB.false_positives, DB.interception_cas)


def test_interception_ca_matches_are_the_same_when_asked_again() -> None:
    # Names are parsed once per text and fingerprints read once per chain: same answers each time.
    known_sha256 = "89107C8E50E029B7B5F4FF0CCD2956BCC9D0C8BA2BFB6A58374ED63A6B034A30"  # upper case
    chains = [
        [{"subject": "CN=a.kz", "issuer": "CN=Qaznet Trust Network,C=KZ"}],
        [{"subject": "CN=a.kz", "issuer": "CN=x", "sha1": "00" * 20}, {"sha256": known_sha256}],
        [{"subject": "CN=a.kz", "issuer": None}],
    ]
    expected = [("kz.qaznet_trust_network", "issuer"), ("kz.isca_root", "sha256"), None]
    for _ in range(2):
        found = [match_interception_ca(DB, chain) for chain in chains]
        assert [(m.id, m.matched_by) if m else None for m in found] == expected


def test_each_database_remembers_its_own_ca_names_within_a_bound(monkeypatch) -> None:
    import probes.fingerprints_match as matching

    qaznet = [{"subject": "CN=a.kz", "issuer": "CN=Qaznet Trust Network,C=KZ"}]
    assert match_interception_ca(DB, qaznet).id == "kz.qaznet_trust_network"  # type: ignore[union-attr]
    others = tuple(ca for ca in DB.interception_cas if ca.id != "kz.qaznet_trust_network")
    without = type(DB)(DB.blockpages, DB.false_positives, others)
    assert match_interception_ca(without, qaznet) is None
    assert without.ca_fingerprints == frozenset().union(
        *(ca.sha256 | ca.sha1 | ca.spki_sha256 for ca in others))
    monkeypatch.setattr(matching, "_CA_BY_NAME_SIZE", 2)
    for n in range(5):
        match_interception_ca(without, [{"subject": f"CN=site{n}", "issuer": "CN=x"}])
        assert len(without.ca_by_name) <= 2
    assert match_interception_ca(without, qaznet) is None


def test_distinguished_names_with_escapes() -> None:
    assert parse_distinguished_name(r"CN=Acme\, Inc,O=X+OU=Y,C=KZ") == {
        "CN": ["Acme, Inc"],
        "O": ["X"],
        "OU": ["Y"],
        "C": ["KZ"],
    }


def _write(tmp_path: Path, blockpages: str, cas: str = "") -> Path:
    (tmp_path / "interception_cas.toml").write_text(cas, encoding="utf-8")
    path = tmp_path / "blockpages.toml"
    path.write_text(blockpages, encoding="utf-8")
    return path


_ENTRY = """
[[fingerprint]]
id = "t.one"
kind = "http_blockpage"
pattern_kind = "{pattern_kind}"
pattern = '{pattern}'
name = "n"
country = "KZ"
confidence = "low"
source = "test"
"""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_ENTRY.format(pattern_kind="body_regex", pattern="(unclosed"), "entry 't.one': bad regex"),
        (_ENTRY.format(pattern_kind="dns_cidr", pattern="x"), "'pattern_kind' is 'dns_cidr'"),
        (_ENTRY.format(pattern_kind="body_substring", pattern=""), "'pattern' must be a non-empty"),
        (
            _ENTRY.format(pattern_kind="body_substring", pattern="a") * 2,
            "entry 't.one': duplicate id",
        ),
        ("[[fingerprint]]\nid = 3\n", "entry #1: 'id'"),
        ("[[fingerprint\n", "not valid TOML"),
    ],
)
def test_malformed_blockpage_file_names_file_and_entry(
    tmp_path: Path, text: str, message: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(FingerprintFileError) as caught:
        load_fingerprints(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_malformed_ca_file_names_file_and_entry(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "",
        '[[ca]]\nid = "c.one"\nname = "n"\ncountry = "KZ"\nconfidence = "high"\nsource = "s"\nsha1 = ["xyz"]\n',
    )
    with pytest.raises(
        FingerprintFileError, match=r"interception_cas\.toml: entry 'c\.one': 'sha1'"
    ):
        load_fingerprints(path)


def test_a_custom_file_is_used(tmp_path: Path) -> None:
    path = _write(tmp_path, _ENTRY.format(pattern_kind="body_substring", pattern="Custom Marker"))
    database = load_fingerprints(path)
    assert [f.id for f in database.blockpages] == ["t.one"]
    assert match_http_blockpage(database, "<b>custom   marker</b>", {}, None).id == "t.one"  # type: ignore[union-attr]
    assert database.interception_cas == ()
