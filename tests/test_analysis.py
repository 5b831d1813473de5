"""The analysis against golden scenarios (tests/golden/*.json: test_keys in, verdict out), plus its parts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from probes.analysis import analyze, classify_tcp_blocking, is_ip_literal
from probes.analysis_compare import (
    compare_body_lengths,
    compare_headers,
    compare_titles,
    simhash_distance,
    text_simhash,
)
from probes.analysis_decide import BLOCKING_OF_METHOD
from probes.bogons import is_bogon, is_ip_address, parse_ip, parse_networks
from probes.ooni.normalise import normalise_test_keys
from probes.vocabulary import BLOCKING_METHODS

GOLDEN = Path(__file__).parent / "golden"
SCENARIOS = sorted(GOLDEN.glob("*.json"))


def load_scenario(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_golden_scenario(path: Path) -> None:
    scenario = load_scenario(path)
    test_keys = scenario["test_keys"]
    if scenario.get("ooni"):
        # OONI's own shape (docs/ooni.md): read as `blockmon ooni import` reads it.
        test_keys = normalise_test_keys(test_keys)
    verdict = analyze(test_keys, public_networks=scenario.get("public_networks", []))
    keys = verdict.as_test_keys()
    for name, expected in scenario["expected"].items():
        if name == "tcp_blocked":
            assert verdict.tcp_blocked == expected, f"{path.name}: tcp blocked"
        elif name == "notes_contain":
            assert any(expected in note for note in verdict.notes), (
                f"{path.name}: notes {verdict.notes}"
            )
        elif name == "fingerprint" and expected is not None:
            assert keys["fingerprint"] is not None, f"{path.name}: no fingerprint"
            for field, value in expected.items():
                assert keys["fingerprint"][field] == value, f"{path.name}: fingerprint.{field}"
        else:
            assert keys[name] == expected, (
                f"{path.name}: {name} is {keys[name]!r}; notes {verdict.notes}"
            )


def test_every_blocking_method_has_a_golden_scenario() -> None:
    produced = {load_scenario(p)["expected"].get("blocking_method") for p in SCENARIOS}
    assert set(BLOCKING_METHODS) <= produced, set(BLOCKING_METHODS) - produced


def test_every_blocking_value_has_a_golden_scenario() -> None:
    produced = {json.dumps(load_scenario(p)["expected"].get("blocking")) for p in SCENARIOS}
    assert produced >= {"null", "false", '"dns"', '"tcp_ip"', '"http-failure"', '"http-diff"'}


def test_blocking_of_each_method_follows_ooni() -> None:
    assert set(BLOCKING_OF_METHOD) == set(BLOCKING_METHODS)
    assert BLOCKING_OF_METHOD["dns.blockpage"] == "dns"
    assert BLOCKING_OF_METHOD["tls.mitm"] == "http-failure"
    assert BLOCKING_OF_METHOD["http.blockpage"] == "http-diff"


def test_verdict_fills_tcp_blocked_without_touching_the_input() -> None:
    scenario = load_scenario(GOLDEN / "tcp_reset.json")
    test_keys = scenario["test_keys"]
    verdict = analyze(test_keys, public_networks=scenario["public_networks"])
    assert verdict.as_test_keys()["tcp_connect"][0]["status"]["blocked"] is True
    assert test_keys["tcp_connect"][0]["status"]["blocked"] is None


def test_same_input_gives_the_same_verdict() -> None:
    scenario = load_scenario(GOLDEN / "tls_mitm_qaznet.json")
    first = analyze(scenario["test_keys"], public_networks=scenario["public_networks"])
    second = analyze(scenario["test_keys"], public_networks=scenario["public_networks"])
    assert first == second


def test_without_public_networks_documentation_addresses_are_bogons() -> None:
    scenario = load_scenario(GOLDEN / "honest_accessible_https.json")
    verdict = analyze(scenario["test_keys"])
    # The control also resolved a bogon, so the answer alone is no evidence of tampering.
    assert verdict.blocking is False
    scenario = load_scenario(GOLDEN / "dns_inconsistent.json")
    assert (
        analyze(scenario["test_keys"], public_networks=["203.0.113.0/24"]).blocking_method
        == "dns.bogon"
    )


def test_tls_reset_where_the_control_failed_too_is_no_evidence() -> None:
    scenario = load_scenario(GOLDEN / "tls_reset.json")
    test_keys = json.loads(json.dumps(scenario["test_keys"]))
    control_tls = test_keys["control"]["tls_handshake"]["203.0.113.10:443"]
    control_tls.update(status=False, failure="connection_reset")
    verdict = analyze(test_keys, public_networks=scenario["public_networks"])
    assert (verdict.blocking, verdict.accessible, verdict.blocking_method) == (None, None, None)
    assert any("failed too" in note for note in verdict.notes)


def test_a_redirect_to_a_malformed_url_is_analysed() -> None:
    # The probe records a redirect target that does not parse as it came; reading it once raised.
    scenario = load_scenario(GOLDEN / "honest_accessible_https.json")
    test_keys = json.loads(json.dumps(scenario["test_keys"]))
    hop = json.loads(json.dumps(test_keys["requests"][0]))
    hop["request"]["url"] = "http://[::1/"
    hop.update(response=None, failure="http_invalid_response")
    test_keys["requests"].insert(0, hop)
    test_keys["control"]["http_request"]["failure"] = "http_invalid_response"
    verdict = analyze(test_keys, public_networks=scenario["public_networks"])
    assert (verdict.blocking, verdict.accessible) == (False, False)


def test_ipv6_unreachable_is_not_counted_as_blocked() -> None:
    judged = classify_tcp_blocking(
        [
            {
                "ip": "2001:db8::1",
                "port": 443,
                "status": {"success": False, "failure": "network_unreachable"},
            }
        ],
        {"[2001:db8::1]:443": {"status": True, "failure": None}},
    )
    assert judged[0]["status"]["blocked"] is None


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("172.20.0.1", True),
        ("192.168.1.1", True),
        ("100.64.0.1", True),
        ("169.254.1.1", True),
        ("224.0.0.1", True),
        ("240.0.0.1", True),
        ("0.1.2.3", True),
        ("198.51.100.7", True),
        ("::1", True),
        ("fe80::1", True),
        ("fd00::1", True),
        ("2001:db8::1", True),
        ("::ffff:10.0.0.1", True),
        ("::127.0.0.1", True),  # IPv4-compatible (deprecated, RFC 4291 2.5.5.1)
        ("::10.0.0.1", True),
        ("8.8.8.8", False),
        ("95.59.1.1", False),
        ("2a00:1450::1", False),
    ],
)
def test_is_bogon(address: str, expected: bool) -> None:
    assert is_bogon(address) is expected


def test_public_networks_make_lab_addresses_public() -> None:
    assert is_bogon("127.77.0.10", ["127.77.0.0/24"]) is False
    assert is_bogon("127.78.0.10", ["127.77.0.0/24"]) is True
    with pytest.raises(ValueError, match="not a CIDR"):
        is_bogon("127.0.0.1", ["127.77.0.0/33"])


def test_remembered_bogon_answers_are_the_same_as_judged_ones() -> None:
    # A tuple of ranges (what the probe and the helper pass) is remembered; a list is not.
    for public in (["127.77.0.0/24"], ("127.77.0.0/24",), tuple(parse_networks(["127.77.0.0/24"]))):
        for _ in range(2):
            assert is_bogon("127.77.0.10", public) is False
            assert is_bogon("[127.78.0.10]", public) is True
            assert is_bogon("fe80::1%eth0", public) is True
            assert is_bogon("8.8.8.8", public) is False
    with pytest.raises(ValueError, match="not a CIDR"):
        is_bogon("127.0.0.1", ("127.77.0.0/33",))
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        is_bogon("site.example", ("127.77.0.0/24",))


@pytest.mark.parametrize(
    ("text", "address"),
    [("127.0.0.1", "127.0.0.1"), ("2001:DB8::1", "2001:db8::1"), ("site.example", None),
     ("1.2.3", None), ("1.2.3.4 ", None), ("", None), ("[::1]", None)],
)
def test_parse_ip_and_is_ip_address(text: str, address: str | None) -> None:
    parsed = parse_ip(text)
    assert (None if parsed is None else str(parsed)) == address
    assert is_ip_address(text) is (address is not None)
    assert is_ip_literal(text) is (address is not None or text == "[::1]")


def test_copy_json_is_a_deep_copy_of_plain_data() -> None:
    from collections import OrderedDict

    from probes.analysis_observe import copy_json

    class Name(str):
        pass

    original = {"a": [1, 2.5, {"b": None, "c": [True]}], "d": OrderedDict(e="f"), "g": ("h", [1]),
                "n": Name("x")}
    copied = copy_json(original)
    assert copied == original
    assert copied["a"] is not original["a"] and copied["a"][2] is not original["a"][2]
    assert type(copied["d"]) is dict and copied["d"] == {"e": "f"}
    assert copied["g"] == ("h", [1]) and copied["g"][1] is not original["g"][1]  # deep-copied
    assert copied["n"] is original["n"]
    copied["a"][2]["c"].append(False)
    assert original["a"][2]["c"] == [True]


def test_body_length_proportion_threshold() -> None:
    assert compare_body_lengths(7100, 10000) is True
    assert compare_body_lengths(6900, 10000) is False
    assert compare_body_lengths(0, 0) is True
    assert compare_body_lengths(100, -1) is None
    assert compare_body_lengths(1000, 5000, probe_truncated=True) is True


def test_title_and_header_comparison() -> None:
    assert compare_titles("Azattyq Radio — 25 November", "Azattyq Radio — 26 November") is True
    assert compare_titles("Доступ ограничен", "Azattyq Radio") is False
    assert compare_titles("", None) is None
    assert compare_headers({"X-Cache": "HIT", "Date": "x"}, {"x-cache": "MISS"}) is True
    assert compare_headers({"Date": "x"}, {"X-Cache": "MISS"}) is False


def test_simhash_is_close_for_similar_texts_and_far_for_different_ones() -> None:
    base = " ".join(f"word{i}" for i in range(300))
    near = base.replace("word7 ", "changed ")
    far = " ".join(f"other{i}" for i in range(300))
    assert simhash_distance(text_simhash(base), text_simhash(near)) <= 10
    assert simhash_distance(text_simhash(base), text_simhash(far)) > 10


def test_analysis_modules_stay_pure() -> None:
    code = (
        "import sys, probes.analysis, probes.fingerprints, probes.bogons;"
        "bad = [m for m in ('aiohttp', 'sqlite3', 'sqlite_utils', 'apscheduler', 'dns.resolver')"
        " if m in sys.modules];"
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_outcomes_doc_lists_every_failure_and_method() -> None:
    from probes.vocabulary import FAILURES

    text = (Path(__file__).parent.parent / "docs" / "outcomes.md").read_text(encoding="utf-8")
    missing = [value for value in (*FAILURES, *BLOCKING_METHODS) if f"| `{value}` |" not in text]
    assert missing == [], f"docs/outcomes.md has no row for {missing}"
    undocumented = [p.stem for p in SCENARIOS if p.stem not in text]
    assert undocumented == [], f"docs/outcomes.md does not cite golden {undocumented}"
