"""measure_url end to end against the lab and a real control helper: one test per lab scenario."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lab import LabInfo
from probes.measure import measure_url
from probes.options import ProbeIdentity, ProbeOptions

PROJECT_ROOT = Path(__file__).resolve().parents[1]
BLOCKMON = str(Path(sys.executable).parent / "blockmon")

# Short timeouts keep the timeout scenarios quick; the censor's silence is all we wait for.
FAST = {"dns_timeout": 1.0, "connect_timeout": 1.5, "tls_timeout": 1.5, "http_timeout": 2.0, "control_timeout": 20.0}


def censored_vantage(lab_info: LabInfo, helper_url: str | None) -> ProbeOptions:
    """A probe inside the censored network: the lying resolver, the filtered source address."""
    return ProbeOptions(
        identity=ProbeIdentity(probe_cc="KZ", probe_asn="AS9198", vantage_id="lab-censored"),
        resolvers=(lab_info.censored_resolver,),
        source_address=lab_info.censored_source,
        ca_file=lab_info.ca_file,
        lab_public_ranges=(lab_info.public_range,),
        helper_url=helper_url,
        **FAST,
    )


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# (url, blocking, accessible, blocking_method). The http.* middleboxes read the Host header, so
# those scenarios are plain http; tls.* read the SNI, so https.
SCENARIOS = [
    ("https://ok.lab.test/", False, True, None),
    ("https://nxdomain.lab.test/", "dns", False, "dns.nxdomain"),
    ("https://servfail.lab.test/", "dns", False, "dns.servfail"),
    ("https://dns-timeout.lab.test/", "dns", False, "dns.timeout"),
    ("https://bogon.lab.test/", "dns", False, "dns.bogon"),
    ("http://dns-blockpage.lab.test/", "dns", False, "dns.blockpage"),
    ("https://tls-reset.lab.test/", "http-failure", False, "tls.reset"),
    ("https://tls-timeout.lab.test/", "http-failure", False, "tls.timeout"),
    ("https://tls-mitm.lab.test/", "http-failure", False, "tls.mitm"),
    ("http://http-reset.lab.test/", "http-failure", False, "http.reset"),
    ("http://http-timeout.lab.test/", "http-failure", False, "http.timeout"),
    ("http://http-blockpage.lab.test/", "http-diff", False, "http.blockpage"),
    ("http://http-diff.lab.test/", "http-diff", False, "http.diff"),
    ("https://cdn.lab.test/", False, True, None),
    ("https://dynamic.lab.test/", False, True, None),
    ("https://down.lab.test/", False, False, None),
    ("https://down-nxdomain.lab.test/", False, False, None),
    ("https://redirect.lab.test/", False, True, None),
]
FIREWALL_SCENARIOS = [
    ("https://tcp-reset.lab.test/", "tcp_ip", False, "tcp.reset"),
    ("https://tcp-timeout.lab.test/", "tcp_ip", False, "tcp.timeout"),
]


def _assert_verdict(measurement: dict, blocking, accessible, method) -> None:
    keys = measurement["test_keys"]
    summary = (keys["blocking"], keys["accessible"], keys["blocking_method"], keys["x_analysis_notes"])
    assert (keys["blocking"], keys["accessible"], keys["blocking_method"]) == (blocking, accessible, method), summary
    assert keys["control_failure"] is None and keys["control"]["dns"] is not None


@pytest.mark.parametrize(("url", "blocking", "accessible", "method"), SCENARIOS)
async def test_lab_scenario(lab_info, helper_url, url, blocking, accessible, method):
    measurement = await measure_url(url, censored_vantage(lab_info, helper_url))
    _assert_verdict(measurement, blocking, accessible, method)


@pytest.mark.parametrize(("url", "blocking", "accessible", "method"), FIREWALL_SCENARIOS)
async def test_lab_ip_blocking(lab_info, helper_url, lab_requires_firewall, url, blocking, accessible, method):
    measurement = await measure_url(url, censored_vantage(lab_info, helper_url))
    _assert_verdict(measurement, blocking, accessible, method)


async def test_measurement_base_fields_and_evidence(lab_info, helper_url):
    options = censored_vantage(lab_info, helper_url)
    measurement = await measure_url(
        "https://tls-mitm.lab.test/", options, annotations={"target_id": "mitm"}, report_id="run-1"
    )
    assert measurement["software_name"] == "blockmon" and measurement["test_name"] == "web_connectivity"
    assert measurement["probe_cc"] == "KZ" and measurement["probe_ip"] == "127.0.0.1"
    assert measurement["report_id"] == "run-1" and measurement["annotations"]["target_id"] == "mitm"
    assert measurement["measurement_uid"].split("_")[1:3] == ["KZ", "webconnectivity"]
    assert measurement["resolver_ip"] == lab_info.censored_resolver.split(":")[0]
    keys = measurement["test_keys"]
    handshake = keys["tls_handshakes"][0]
    # The interception certificate is recorded although verification failed.
    assert handshake["failure"] == "ssl_unknown_authority"
    assert handshake["certificate_chain"] and handshake["certificate_chain"][0]["issuer"]
    assert keys["fingerprint"]["kind"] == "interception_ca"
    # A certificate failure is not retried with another SNI: the chain is the evidence.
    assert keys["sni_differential"] == []


async def test_sni_retries_after_a_tls_reset(lab_info, helper_url):
    measurement = await measure_url("https://tls-reset.lab.test/", censored_vantage(lab_info, helper_url))
    retries = measurement["test_keys"]["sni_differential"]
    assert {entry["server_name"] for entry in retries} == {"example.org", None}
    address = measurement["test_keys"]["tls_handshakes"][0]["address"]
    assert all(entry["address"] == address for entry in retries)


async def test_redirect_hops_are_recorded_most_recent_first(lab_info, helper_url):
    measurement = await measure_url("https://redirect.lab.test/", censored_vantage(lab_info, helper_url))
    requests = measurement["test_keys"]["requests"]
    assert [r["response"]["code"] for r in requests] == [200, 301]
    assert requests[0]["request"]["url"] == "https://ok.lab.test/"


async def test_redirect_hops_have_their_own_dns_tcp_and_tls_entries(lab_info, helper_url):
    measurement = await measure_url("https://redirect.lab.test/", censored_vantage(lab_info, helper_url))
    keys = measurement["test_keys"]
    hop_queries = [q for q in keys["queries"] if q.get("x_redirect_hop")]
    assert [q["hostname"] for q in keys["queries"]] == ["redirect.lab.test"] * 2 + ["ok.lab.test"] * 2
    assert {q["query_type"] for q in hop_queries} == {"A", "AAAA"}
    assert all(q["x_redirect_hop"] == 1 for q in hop_queries)
    ok_address = next(a["ipv4"] for q in hop_queries for a in q["answers"] if a.get("ipv4"))
    hop_tcp = [entry for entry in keys["tcp_connect"] if entry.get("x_redirect_hop")]
    assert [(entry["ip"], entry["port"], entry["status"]["success"]) for entry in hop_tcp] == [(ok_address, 443, True)]
    hop_tls = [entry for entry in keys["tls_handshakes"] if entry.get("x_redirect_hop")]
    assert [(entry["server_name"], entry["address"], entry["failure"]) for entry in hop_tls] == [
        ("ok.lab.test", f"{ok_address}:443", None)
    ]
    assert hop_tls[0]["certificate_chain"][0]["sans"] == ["ok.lab.test"]
    # The page reached through the hop came over that very connection.
    assert keys["requests"][0]["address"] == hop_tls[0]["address"]
    # The measured URL's own steps come first and carry no hop mark.
    assert not keys["queries"][0].get("x_redirect_hop") and not keys["tcp_connect"][0].get("x_redirect_hop")
    assert keys["blocking"] is False and keys["accessible"] is True


async def test_control_down(lab_info):
    options = censored_vantage(lab_info, _closed_port_url())
    ok = await measure_url("https://ok.lab.test/", options)
    reset = await measure_url("https://tls-reset.lab.test/", options)
    assert ok["test_keys"]["control_failure"] == "connection_refused" and ok["test_keys"]["control"] == {}
    assert ok["test_keys"]["accessible"] is True  # a verified https page needs no control to trust
    assert reset["test_keys"]["control_failure"] == "connection_refused"
    assert reset["test_keys"]["blocking"] is None  # without the control it cannot tell


def test_cli_measures_good_urls_despite_a_bad_one(lab_info, helper_url, tmp_path):
    info_file = tmp_path / "lab.json"
    info_file.write_text(lab_info.to_json())
    urls_file = tmp_path / "urls.txt"
    urls_file.write_text("# one per line\nhttp://nxdomain.lab.test/\nftp://ok.lab.test/\n")
    completed = subprocess.run(
        [BLOCKMON, "measure", "--lab", str(info_file), "--helper", helper_url,
         "--probe-cc", "KZ", "--input-file", str(urls_file), "--input-file", str(tmp_path / "missing.txt"),
         "https://ok.lab.test/", "http://bad url/"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    measurements = [json.loads(line) for line in completed.stdout.splitlines()]
    verdicts = {m["input"]: m["test_keys"]["blocking"] for m in measurements}
    assert verdicts == {"https://ok.lab.test/": False, "http://nxdomain.lab.test/": "dns"}
    assert all(m["probe_cc"] == "KZ" for m in measurements)
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert any("'http://bad url/'" in line for line in errors)
    assert any("'ftp://ok.lab.test/'" in line and "scheme" in line
               and f"{urls_file}:3:" in line for line in errors)
    assert any("missing.txt" in line for line in errors)


def test_cli_exits_non_zero_when_nothing_could_run(tmp_path):
    completed = subprocess.run(
        [BLOCKMON, "measure", "not-a-url", "http://"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode != 0
    assert "error: URL 'not-a-url'" in completed.stderr
    assert completed.stdout == ""



@pytest.mark.parametrize("helper", ["nowhere", "ftp://h.test/", "http://h.test:99999/"])
def test_cli_rejects_a_bad_helper_url_in_one_line(helper):
    # Once accepted: every measurement then carried control_failure unknown_failure.
    completed = subprocess.run(
        [BLOCKMON, "measure", "--helper", helper, "http://ok.lab.test/"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode == 2
    assert "--helper" in completed.stderr and repr(helper) in completed.stderr
    assert completed.stdout == ""


def test_input_file_reads_a_citizen_lab_csv_by_its_url_column(tmp_path):
    from monitor.commands.measure import read_input_file

    csv_file = tmp_path / "kz.csv"
    csv_file.write_text("url,category_code,notes\nhttp://www.akorda.kz/,GOVT,\"a, b\"\nhttps://azattyq.org/,NEWS,\n")
    assert read_input_file(csv_file) == [("http://www.akorda.kz/", f"{csv_file}:2"),
                                         ("https://azattyq.org/", f"{csv_file}:3")]
