"""`[probe] extra_fingerprints`: OONI's published blocking-fingerprints CSV, read without code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.settings import load_settings
from probes.analysis import analyze
from probes.fingerprints_load import (
    FingerprintFileError,
    fingerprints_with_extras,
    load_ooni_fingerprints_csv,
)
from tests.test_analysis import GOLDEN

# The header and rows as ooni/blocking-fingerprints publishes them (fingerprints_http.csv and
# fingerprints_dns.csv); the patterns are this test's own.
HTTP_CSV = """name,location_found,pattern_type,pattern,confidence_no_fp,expected_countries,source,exp_url,notes,scope
zz_test_body,body,contains,Blocked by the Example Ministry,10,XX,,https://explorer.ooni.org/,,nat
zz_test_server,header.server,full,ExampleFilter/1.0,7,XX,,,,isp
zz_test_location,header.location,prefix,http://block.example.net/,9,XX,,,,isp
"""
DNS_CSV = """name,location_found,pattern_type,pattern,confidence_no_fp,expected_countries,source,exp_url,notes,scope
zz_test_dns_1,dns,full,203.0.113.66,10,XX,,,,nat
zz_test_dns_prefix,dns,prefix,198.51.,5,XX,,,,nat
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_ooni_csv_rows_become_fingerprints(tmp_path):
    http = {f.id: f for f in load_ooni_fingerprints_csv(write(tmp_path, "http.csv", HTTP_CSV))}
    assert (http["ooni.zz_test_body"].pattern_kind, http["ooni.zz_test_body"].confidence) == (
        "body_substring", "high")
    assert (http["ooni.zz_test_server"].header, http["ooni.zz_test_server"].pattern) == (
        "server", r"^ExampleFilter/1\.0$")
    dns = {f.id: f for f in load_ooni_fingerprints_csv(write(tmp_path, "dns.csv", DNS_CSV))}
    assert str(dns["ooni.zz_test_dns_prefix"].network) == "198.51.0.0/16"
    assert dns["ooni.zz_test_dns_1"].kind == "dns_blockpage"


def test_an_extra_fingerprint_names_a_page_the_packaged_ones_do_not(tmp_path):
    scenario = json.loads((GOLDEN / "http_diff.json").read_text(encoding="utf-8"))
    test_keys = scenario["test_keys"]
    test_keys["requests"][0]["response"]["body"] = "<p>Blocked by the Example Ministry</p>"
    plain = analyze(test_keys, public_networks=scenario["public_networks"])
    assert plain.blocking_method == "http.diff"
    extra = fingerprints_with_extras(write(tmp_path, "http.csv", HTTP_CSV))
    verdict = analyze(test_keys, public_networks=scenario["public_networks"], fingerprints=extra)
    assert verdict.blocking_method == "http.blockpage"
    assert verdict.fingerprint["id"] == "ooni.zz_test_body"


def test_a_bad_row_names_file_and_row(tmp_path):
    bad = HTTP_CSV + "zz_bad,cookie,contains,x,5,XX,,,,nat\n"
    path = write(tmp_path, "bad.csv", bad)
    with pytest.raises(FingerprintFileError, match=r"bad\.csv: row 5: location_found 'cookie'"):
        load_ooni_fingerprints_csv(path)
    with pytest.raises(FingerprintFileError, match="not OONI's fingerprint CSV"):
        load_ooni_fingerprints_csv(write(tmp_path, "other.csv", "a,b\n1,2\n"))


def test_the_setting_reaches_the_probe_options(tmp_path):
    path = write(tmp_path, "http.csv", HTTP_CSV)
    config = tmp_path / "blockmon.toml"
    config.write_text(f'[probe]\nextra_fingerprints = "{path}"\n', encoding="utf-8")
    assert load_settings(str(config)).probe.to_probe_options().extra_fingerprints == path
