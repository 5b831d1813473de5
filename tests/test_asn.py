"""The offline IP-to-ASN database and what uses it: analysis, measure, helper, collector."""

from __future__ import annotations

import copy
import gzip
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from lab import LabInfo
from monitor.cli import cli
from monitor.collector.probe_network import fill_probe_network
from monitor.settings import SettingsError, load_settings
from probes.analysis import analyze
from probes.asn import (
    AsnDatabase,
    AsnDatabaseError,
    AsnInfo,
    annotate_dns_answers,
    cached_asn_database,
    load_asn_database,
    open_asn_database,
)
from probes.measure import measure_url
from probes.options import ProbeIdentity, ProbeOptions
from tests.fixtures.collector import CollectorProcess, http_json, sample_measurement
from tests.fixtures.helper import lab_helper_arguments, start_helper_process, stop_helper_process

GOLDEN = Path(__file__).parent / "golden"
TEST_AS = 64500  # RFC 5398 documentation AS: the synthetic owner of 127.0.0.0/8

# iptoasn's layout, unrouted ranges (AS 0, country "None") included as the real files have them.
SAMPLE_V4 = (
    "0.0.0.0\t0.255.255.255\t0\tNone\tNot routed\n"
    "1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n"
    "2.0.0.0\t2.0.3.255\t9198\tKZ\tKAZTELECOM-AS\n"
    f"127.0.0.0\t127.255.255.255\t{TEST_AS}\tKZ\tBLOCKMON-TEST-AS Loopback Net\n"
    "203.0.113.0\t203.0.113.255\t64501\tUnknown\t\n"
)
SAMPLE_V6 = (
    "2001:db8::\t2001:db8:0:ffff:ffff:ffff:ffff:ffff\t13335\tUS\tCLOUDFLARENET\n"
    "2001:db8:1::\t2001:db8:1::ff\t9198\tKZ\tKAZTELECOM-AS\n"
)


@pytest.fixture(scope="module")
def asn_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gzipped combined file (IPv4 then IPv6), as ip2asn-combined.tsv.gz."""
    path = tmp_path_factory.mktemp("asn") / "ip2asn-combined.tsv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as stream:
        stream.write(SAMPLE_V4 + SAMPLE_V6)
    return path


@pytest.fixture(scope="module")
def database(asn_file: Path) -> AsnDatabase:
    return load_asn_database(asn_file)


# ---------------------------------------------------------------- lookup


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("1.0.0.0", AsnInfo(13335, "US", "CLOUDFLARENET")),
        ("1.0.0.255", AsnInfo(13335, "US", "CLOUDFLARENET")),
        ("1.0.1.0", None),
        ("2.0.2.7", AsnInfo(9198, "KZ", "KAZTELECOM-AS")),
        ("0.1.2.3", None),  # AS 0: unrouted, dropped at load
        ("127.0.0.1", AsnInfo(TEST_AS, "KZ", "BLOCKMON-TEST-AS Loopback Net")),
        ("203.0.113.9", AsnInfo(64501, "", "")),
        ("255.255.255.255", None),
        ("2001:db8::1", AsnInfo(13335, "US", "CLOUDFLARENET")),
        ("[2001:db8:1::ff]", AsnInfo(9198, "KZ", "KAZTELECOM-AS")),
        ("2001:db8:1::100", None),
        ("::ffff:2.0.0.1", AsnInfo(9198, "KZ", "KAZTELECOM-AS")),
        ("::1", None),
        ("not-an-ip", None),
    ],
)
def test_lookup_finds_the_range_holding_an_address(
    database: AsnDatabase, ip: str, expected: AsnInfo | None
) -> None:
    assert database.lookup(ip) == expected


def test_plain_and_gzipped_files_load_the_same(tmp_path: Path, database: AsnDatabase) -> None:
    v4, v6 = tmp_path / "ip2asn-v4.tsv", tmp_path / "ip2asn-v6.tsv"
    v4.write_text(SAMPLE_V4, encoding="utf-8")
    v6.write_text(SAMPLE_V6, encoding="utf-8")
    separate = load_asn_database(v4, v6)
    assert (separate.ipv4_ranges, separate.ipv6_ranges) == (4, 2)
    assert len(separate) == len(database) == 6
    for ip in ("1.0.0.9", "127.9.9.9", "2001:db8::5", "2001:db8:1::1", "9.9.9.9"):
        assert separate.lookup(ip) == database.lookup(ip)


def test_ranges_added_by_hand() -> None:
    database = AsnDatabase()
    database.add_range("10.0.0.0", "10.0.0.255", AsnInfo(1, "KZ", "one"))
    database.add_range("10.0.1.0", "10.0.1.0", AsnInfo(1, "KZ", "one"))
    assert database.lookup("10.0.1.0") == AsnInfo(1, "KZ", "one")
    assert database.lookup("10.0.1.1") is None
    with pytest.raises(ValueError, match="sorted and disjoint"):
        database.add_range("10.0.0.128", "10.0.2.0", AsnInfo(2, "KZ", "two"))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("1.2.3.0\t1.2.3.255\t13335\n", "expected 5 tab-separated fields"),
        ("1.2.3.0 1.2.3.255 13335 US CLOUDFLARENET\n", "expected 5 tab-separated fields"),
        ("1.2.3\t1.2.3.255\t13335\tUS\tX\n", "range_start '1.2.3' is not an IP address"),
        ("1.2.3.0\t1.2.3.256\t13335\tUS\tX\n", "range_end '1.2.3.256' is not an IP address"),
        ("1.2.3.0\t2001:db8::\t13335\tUS\tX\n", "differ in IP version"),
        ("1.2.3.0\t1.2.3.255\tAS13335\tUS\tX\n", "AS_number 'AS13335' is not a number"),
        ("1.2.3.0\t1.2.3.255\t13335\tUSA\tX\n", "country_code 'USA' is not a two-letter code"),
        ("1.2.3.9\t1.2.3.0\t13335\tUS\tX\n", "range end is before its start"),
        ("1.0.0.128\t1.0.0.200\t13335\tUS\tX\n", "must be sorted and disjoint"),
    ],
)
def test_a_malformed_line_is_named_by_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n\n" + line, encoding="utf-8")
    with pytest.raises(AsnDatabaseError) as caught:
        load_asn_database(path)
    assert str(caught.value).startswith(f"{path}:3: ")
    assert message in str(caught.value)


def test_unreadable_files_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AsnDatabaseError, match=r"missing.tsv: cannot read: No such file"):
        load_asn_database(tmp_path / "missing.tsv")
    truncated = tmp_path / "cut.tsv.gz"
    lines = "".join(f"1.0.{n}.0\t1.0.{n}.255\t{n + 1}\tKZ\tNet {n}\n" for n in range(256))
    truncated.write_bytes(gzip.compress(lines.encode())[:300])
    with pytest.raises(AsnDatabaseError, match=r"cut.tsv.gz: .*(truncated|cannot read)"):
        load_asn_database(truncated)
    latin = tmp_path / "latin.tsv"
    latin.write_bytes(b"1.0.0.0\t1.0.0.255\t1\tKZ\tCaf\xe9\n")
    with pytest.raises(AsnDatabaseError, match=r"latin.tsv:1: not UTF-8"):
        load_asn_database(latin)


def test_the_cache_loads_once_and_again_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "asn.tsv"
    path.write_text("1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n", encoding="utf-8")
    assert cached_asn_database(str(path)) is None
    first = open_asn_database(str(path))
    assert open_asn_database(str(path)) is first
    assert cached_asn_database(str(path)) is first
    path.write_text("1.0.0.0\t1.0.0.255\t9198\tKZ\tKAZTELECOM-AS\n", encoding="utf-8")
    os.utime(path, ns=(1, 1))  # a new mtime whatever the clock's resolution
    assert cached_asn_database(str(path)) is None
    assert open_asn_database(str(path)).lookup("1.0.0.1") == AsnInfo(9198, "KZ", "KAZTELECOM-AS")


def test_dns_answers_are_annotated_as_ooni_does(database: AsnDatabase) -> None:
    queries: list[dict[str, Any]] = [
        {"answers": [{"answer_type": "CNAME", "hostname": "cdn.example.net"},
                     {"answer_type": "A", "ipv4": "1.0.0.7"},
                     {"answer_type": "AAAA", "ipv6": "2001:db8:1::2"},
                     {"answer_type": "A", "ipv4": "9.9.9.9"}]},
        {"answers": None},
    ]
    annotate_dns_answers(queries, database)
    answers = queries[0]["answers"]
    assert "asn" not in answers[0]
    assert (answers[1]["asn"], answers[1]["as_org_name"]) == (13335, "CLOUDFLARENET")
    assert (answers[2]["asn"], answers[2]["as_org_name"]) == (9198, "KAZTELECOM-AS")
    assert (answers[3]["asn"], answers[3]["as_org_name"]) == (0, "")


# ---------------------------------------------------------------- analysis


def _golden(name: str) -> dict[str, Any]:
    return json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))


def test_same_as_decides_consistency_only_when_both_sides_know_it() -> None:
    scenario = _golden("honest_cdn_same_asn")
    networks = scenario["public_networks"]
    assert analyze(scenario["test_keys"], public_networks=networks).dns_consistency == "consistent"

    # The probe's own annotation is enough, without the helper's word on the probe's address.
    keys = copy.deepcopy(scenario["test_keys"])
    del keys["control"]["ip_info"]["198.51.100.20"]
    verdict = analyze(keys, public_networks=networks)
    assert verdict.dns_consistency == "consistent"
    assert any("same AS (AS13335)" in note for note in verdict.notes)

    # Without an AS database anywhere the addresses only differ.
    for entry in keys["control"]["ip_info"].values():
        entry["asn"] = 0
    for answer in keys["queries"][0]["answers"]:
        answer["asn"] = 0
    assert analyze(keys, public_networks=networks).dns_consistency == "inconsistent"


def test_different_as_is_named_in_the_note() -> None:
    scenario = _golden("dns_inconsistent_other_asn")
    verdict = analyze(scenario["test_keys"], public_networks=scenario["public_networks"])
    assert verdict.blocking_method == "dns.inconsistent"
    assert "dns: different addresses in a different AS (probe AS9198, control AS13335)" in verdict.notes


# ---------------------------------------------------------------- collector registration


def test_registration_fills_only_what_the_probe_left_out(database: AsnDatabase) -> None:
    unknown = {"vantage_id": "kz-1", "enrolment_secret": "s", "probe_cc": "ZZ",
               "probe_asn": "AS0", "probe_network_name": ""}
    assert fill_probe_network(unknown, "2.0.0.9", database) == {
        **unknown, "probe_cc": "KZ", "probe_asn": "AS9198", "probe_network_name": "KAZTELECOM-AS"}
    told = {**unknown, "probe_cc": "KZ", "probe_asn": "AS48716", "probe_network_name": "Kcell"}
    assert fill_probe_network(told, "2.0.0.9", database) == told
    only_cc = {**unknown, "probe_asn": "AS48716"}
    assert fill_probe_network(only_cc, "2.0.0.9", database) == {**only_cc, "probe_cc": "KZ"}
    assert fill_probe_network(unknown, "9.9.9.9", database) == unknown
    assert fill_probe_network(unknown, "2.0.0.9", None) == unknown


@pytest.fixture
def asn_collector(tmp_path: Path, asn_file: Path) -> Iterator[CollectorProcess]:
    collector = CollectorProcess(
        database=f"sqlite:///{tmp_path / 'collector.db'}", workdir=tmp_path,
        environment={"BLOCKMON_COLLECTOR_ASN_DATABASE": str(asn_file)},
    )
    collector.start()
    yield collector
    collector.stop()


def test_collector_derives_a_silent_probes_network_from_its_address(
    asn_collector: CollectorProcess,
) -> None:
    register = f"{asn_collector.url}/api/v1/register"
    status, body = http_json("POST", register, {
        "enrolment_secret": asn_collector.enrol(), "vantage_id": "kz-silent"})
    assert status == 201, body
    silent_token = body["token"]
    status, body = http_json("POST", register, {
        "enrolment_secret": asn_collector.enrol(), "vantage_id": "kz-told",
        "probe_cc": "KZ", "probe_asn": "AS9198", "probe_network_name": "JSC Kazakhtelecom"})
    assert status == 201, body
    path = asn_collector.database.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT probe_id, probe_cc, probe_asn, probe_network_name FROM probes ORDER BY probe_id"
        ).fetchall()
        dump = "\n".join(connection.iterdump())
    assert rows == [
        ("kz-silent", "KZ", f"AS{TEST_AS}", "BLOCKMON-TEST-AS Loopback Net"),
        ("kz-told", "KZ", "AS9198", "JSC Kazakhtelecom"),
    ]
    assert "127.0.0.1" not in dump  # the address served one lookup and was not kept

    # Its measurements still say ZZ/AS0 (the probe does not know): stored as registered.
    measurement = sample_measurement(1, vantage_id="kz-silent")
    measurement["probe_cc"], measurement["probe_asn"] = "ZZ", "AS0"
    status, reply = http_json("POST", f"{asn_collector.url}/api/v1/measurements",
                              {"measurements": [measurement]}, token=silent_token)
    assert (status, reply["stored"]) == (200, 1), reply
    with sqlite3.connect(path) as connection:
        stored = connection.execute(
            "SELECT probe_cc, probe_asn, json FROM measurements WHERE vantage_id = 'kz-silent'"
        ).fetchall()
    assert [(cc, asn) for cc, asn, _ in stored] == [("KZ", f"AS{TEST_AS}")]
    assert json.loads(stored[0][2])["probe_asn"] == f"AS{TEST_AS}"
    # A probe that names another network than its registration's is still refused.
    measurement = sample_measurement(2, vantage_id="kz-silent")
    status, reply = http_json("POST", f"{asn_collector.url}/api/v1/measurements",
                              {"measurements": [measurement]}, token=silent_token)
    assert (status, reply["field"]) == (403, "measurements[0].probe_asn"), reply


# ---------------------------------------------------------------- settings and commands


def test_settings_name_a_missing_asn_file(tmp_path: Path, asn_file: Path) -> None:
    config = tmp_path / "blockmon.toml"
    config.write_text(f'[probe]\nasn_database = "{tmp_path / "nope.tsv"}"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match=r"\[probe\] asn_database: no such file"):
        load_settings(config, environ={})
    config.write_text(f'[probe]\nasn_database = "{asn_file}"\n', encoding="utf-8")
    options = load_settings(config, environ={}).probe.to_probe_options()
    assert options.asn_database == str(asn_file)
    assert load_settings(None, environ={}).probe.to_probe_options().asn_database is None


@pytest.mark.parametrize("command", [["helper"], ["measure", "http://example.org/"]])
def test_commands_refuse_a_malformed_asn_file_in_one_line(tmp_path: Path, command: list[str]) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("1.0.0.0\t1.0.0.255\tnot-a-number\tUS\tX\n", encoding="utf-8")
    result = CliRunner().invoke(cli, [*command, "--asn-database", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}:1: AS_number 'not-a-number' is not a number" in result.output
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- end to end in the lab


@pytest.fixture
def asn_helper_url(lab_info: LabInfo, asn_file: Path) -> Iterator[str]:
    process, url = start_helper_process(
        *lab_helper_arguments(lab_info), "--asn-database", str(asn_file))
    try:
        yield url
    finally:
        stop_helper_process(process)


async def test_probe_and_helper_both_report_the_as(
    lab_info: LabInfo, asn_helper_url: str, asn_file: Path
) -> None:
    options = ProbeOptions(
        identity=ProbeIdentity(probe_cc="KZ", probe_asn="AS9198", vantage_id="lab-censored"),
        resolvers=(lab_info.censored_resolver,),
        source_address=lab_info.censored_source,
        ca_file=lab_info.ca_file,
        lab_public_ranges=(lab_info.public_range,),
        helper_url=asn_helper_url,
        asn_database=str(asn_file),
    )
    measurement = await measure_url("https://ok.lab.test/", options)
    keys = measurement["test_keys"]
    answers = [a for q in keys["queries"] for a in q["answers"] if "ipv4" in a]
    assert answers and all(a["asn"] == TEST_AS for a in answers)
    assert measurement["resolver_asn"] == f"AS{TEST_AS}"
    ip_info = keys["control"]["ip_info"]
    assert ip_info and all(entry["asn"] == TEST_AS for entry in ip_info.values())
    assert (keys["blocking"], keys["dns_consistency"]) == (False, "consistent")
