"""The lab behaves as docs/lab.md says: each policy, seen with plain dnspython, ssl and socket clients."""

from __future__ import annotations

import http.client
import os
import re
import socket
import ssl
import subprocess
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.x509.oid import NameOID

from lab import BLOCKPAGE_PHRASE, FirewallUnavailable, Lab, LabControlError, LabError, LabInfo
from lab.policies import decide_front_action, plan_dns_answer
from lab.sniff import sniff_http_host, sniff_tls_server_name
from monitor.cli import cli
from tests.fixtures.lab import set_lab_policy

TIMEOUT = 1.0


# -- pure parts ---------------------------------------------------------------------------------
def client_hello(server_name: str | None) -> bytes:
    """The exact first bytes Python's ssl sends, captured through memory BIOs."""
    context = ssl.create_default_context()
    context.check_hostname = server_name is not None
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_sniff_reads_the_sni_of_a_real_client_hello() -> None:
    hello = client_hello("Tls-Timeout.lab.test")
    assert sniff_tls_server_name(hello).hostname == "tls-timeout.lab.test"
    assert sniff_tls_server_name(hello[:40]).status == "incomplete"
    assert sniff_tls_server_name(client_hello(None)).status == "complete"
    assert sniff_tls_server_name(client_hello(None)).hostname is None
    assert sniff_tls_server_name(b"GET / HTTP/1.1\r\n\r\n").status == "malformed"


def test_sniff_reads_the_http_host_without_its_port() -> None:
    assert (
        sniff_http_host(b"GET / HTTP/1.1\r\nhost: OK.lab.test:80\r\n\r\n").hostname == "ok.lab.test"
    )
    assert sniff_http_host(b"GET / HTTP/1.1\r\nHost: ok.lab.test").status == "incomplete"
    assert sniff_http_host(b"GET / HTTP/1.0\r\nAccept: */*\r\n\r\n").hostname is None
    assert sniff_http_host(b"\x16\x03\x01\x02\x00\r\n\r\n").status == "malformed"


@pytest.mark.parametrize(
    ("policy", "honest", "censored"),
    [
        ("none", ("answer", ("S",)), ("answer", ("S",))),
        ("dns.nxdomain", ("answer", ("S",)), ("nxdomain", ())),
        ("dns.servfail", ("answer", ("S",)), ("servfail", ())),
        ("dns.timeout", ("answer", ("S",)), ("silence", ())),
        ("dns.bogon", ("answer", ("S",)), ("answer", ("127.0.0.1",))),
        ("dns.blockpage", ("answer", ("S",)), ("answer", ("B",))),
        ("cdn", ("answer", ("S",)), ("answer", ("E",))),
        ("tls.timeout", ("answer", ("S",)), ("answer", ("S",))),
        ("down", ("answer", ("D",)), ("answer", ("D",))),
        ("down.nxdomain", ("nxdomain", ()), ("nxdomain", ())),
    ],
)
def test_dns_plan_lies_only_at_the_censored_resolver(
    policy: str, honest: tuple[str, tuple[str, ...]], censored: tuple[str, tuple[str, ...]]
) -> None:
    addresses = {
        "site_address": "S",
        "cdn_edge_address": "E",
        "blockpage_address": "B",
        "dead_address": "D",
    }
    for is_censored, expected in ((False, honest), (True, censored)):
        plan = plan_dns_answer(policy, censored_resolver=is_censored, **addresses)
        assert (plan.kind, plan.addresses) == expected


def test_front_acts_only_on_the_censored_vantage_and_its_protocol() -> None:
    assert (
        decide_front_action("tls.timeout", protocol="tls", from_censored_vantage=True)
        == "blackhole"
    )
    assert (
        decide_front_action("tls.timeout", protocol="tls", from_censored_vantage=False) == "serve"
    )
    assert (
        decide_front_action("tls.timeout", protocol="http", from_censored_vantage=True) == "serve"
    )
    assert (
        decide_front_action("http.blockpage", protocol="http", from_censored_vantage=True)
        == "blockpage"
    )
    assert decide_front_action("http.reset", protocol="tls", from_censored_vantage=True) == "serve"
    assert decide_front_action(None, protocol="tls", from_censored_vantage=True) == "serve"


def test_cli_refuses_an_unknown_policy_with_one_line_naming_it() -> None:
    result = CliRunner().invoke(cli, ["lab", "--host", "www.azattyq.org=tls.slow"])
    assert result.exit_code != 0
    assert "www.azattyq.org" in result.output and "'tls.slow'" in result.output
    result = CliRunner().invoke(cli, ["lab", "--host", "no-equals-sign"])
    assert result.exit_code != 0 and "--host" in result.output


async def test_lab_refuses_to_start_without_root(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(LabError, match="root"):
        async with Lab(tmp_path):
            pass


# -- clients ------------------------------------------------------------------------------------
def other_source(info: LabInfo) -> str:
    return f"{info.prefix}.7"  # any loopback address but the censored vantage's


def resolve(
    info: LabInfo, resolver: str, hostname: str, *, tcp: bool = False
) -> tuple[str, list[str]]:
    """("NOERROR", [addresses]) / ("NXDOMAIN", []) / ("timeout", [])."""
    address = resolver.rpartition(":")[0]
    query = dns.message.make_query(hostname, "A")
    ask = dns.query.tcp if tcp else dns.query.udp
    try:
        response = ask(query, address, timeout=TIMEOUT, source=info.censored_source)
    except dns.exception.Timeout:
        return "timeout", []
    addresses = [item.address for rrset in response.answer for item in rrset]
    return dns.rcode.to_text(response.rcode()), addresses


def connect(info: LabInfo, hostname: str, port: int, source: str) -> socket.socket:
    sock = socket.create_connection(
        (info.site_addresses[hostname], port), timeout=TIMEOUT, source_address=(source, 0)
    )
    return sock


def tls_handshake(
    info: LabInfo, address: str, server_name: str | None, source: str, *, verify: bool = True
) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=info.ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif server_name is None:
        context.check_hostname = False
    sock = socket.create_connection((address, 443), timeout=TIMEOUT, source_address=(source, 0))
    try:
        return context.wrap_socket(sock, server_hostname=server_name)
    except BaseException:
        sock.close()
        raise


def peer_certificate(tls: ssl.SSLSocket) -> x509.Certificate:
    der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def common_name(name: x509.Name) -> str:
    return str(name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def http_get(
    info: LabInfo, hostname: str, source: str, *, https: bool = False, path: str = "/"
) -> tuple[int, dict[str, str], str]:
    address = info.site_addresses[hostname]
    connection: http.client.HTTPConnection
    if https:
        context = ssl.create_default_context(cafile=info.ca_file)
        connection = http.client.HTTPSConnection(
            hostname, 443, timeout=TIMEOUT, source_address=(source, 0), context=context
        )
        # Resolve through the lab, not /etc/hosts: connect to the site address, keep the SNI.
        connection._create_connection = lambda *a, **k: socket.create_connection(  # type: ignore[attr-defined]
            (address, 443), TIMEOUT, (source, 0)
        )
    else:
        connection = http.client.HTTPConnection(
            address, 80, timeout=TIMEOUT, source_address=(source, 0)
        )
    try:
        connection.request("GET", path, headers={"Host": hostname})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def title(body: str) -> str:
    match = re.search(r"<title>(.*?)</title>", body)
    assert match, body[:200]
    return match.group(1)


# -- DNS ----------------------------------------------------------------------------------------
def test_censored_resolver_lies_per_policy_and_the_honest_one_does_not(lab_info: LabInfo) -> None:
    info = lab_info
    honest, censored = info.honest_resolver, info.censored_resolver
    assert resolve(info, honest, "nxdomain.lab.test") == (
        "NOERROR",
        [info.site_addresses["nxdomain.lab.test"]],
    )
    assert resolve(info, censored, "nxdomain.lab.test") == ("NXDOMAIN", [])
    assert resolve(info, censored, "servfail.lab.test")[0] == "SERVFAIL"
    assert resolve(info, censored, "bogon.lab.test") == ("NOERROR", ["127.0.0.1"])
    assert resolve(info, censored, "dns-blockpage.lab.test") == ("NOERROR", [info.blockpage_ip])
    assert resolve(info, censored, "ok.lab.test") == (
        "NOERROR",
        [info.site_addresses["ok.lab.test"]],
    )
    assert resolve(info, censored, "down.lab.test") == ("NOERROR", [info.dead_ip])
    assert resolve(info, honest, "down.lab.test") == ("NOERROR", [info.dead_ip])
    assert resolve(info, honest, "down-nxdomain.lab.test") == ("NXDOMAIN", [])
    assert resolve(info, honest, "not-in-the-lab.example") == ("NXDOMAIN", [])
    cdn_honest, cdn_censored = (
        resolve(info, honest, "cdn.lab.test"),
        resolve(info, censored, "cdn.lab.test"),
    )
    assert cdn_honest[1] and cdn_censored[1] and cdn_honest != cdn_censored


def test_censored_resolver_is_silent_for_dns_timeout_over_udp_and_tcp(lab_info: LabInfo) -> None:
    assert resolve(lab_info, lab_info.censored_resolver, "dns-timeout.lab.test") == ("timeout", [])
    assert resolve(lab_info, lab_info.censored_resolver, "dns-timeout.lab.test", tcp=True) == (
        "timeout",
        [],
    )
    honest = resolve(lab_info, lab_info.honest_resolver, "dns-timeout.lab.test", tcp=True)
    assert honest == ("NOERROR", [lab_info.site_addresses["dns-timeout.lab.test"]])


def test_every_lab_address_is_inside_the_public_range(lab_info: LabInfo) -> None:
    prefix = lab_info.public_range.removesuffix("0/24")
    addresses = [*lab_info.site_addresses.values(), lab_info.blockpage_ip, lab_info.censored_source]
    assert all(address.startswith(prefix) for address in addresses)
    assert Path(lab_info.ca_file).read_text().startswith("-----BEGIN CERTIFICATE-----")


# -- sites --------------------------------------------------------------------------------------
def test_honest_site_serves_a_real_page_over_verified_https(lab_info: LabInfo) -> None:
    status, headers, body = http_get(lab_info, "ok.lab.test", lab_info.censored_source, https=True)
    assert status == 200 and "ok.lab.test" in title(body)
    assert 2000 <= len(body.encode()) <= 8500
    assert http_get(lab_info, "ok.lab.test", lab_info.censored_source, path="/page/3")[2] != body


def test_dynamic_changes_on_every_fetch_and_ok_does_not(lab_info: LabInfo) -> None:
    source = other_source(lab_info)
    assert (
        http_get(lab_info, "dynamic.lab.test", source)[2]
        != http_get(lab_info, "dynamic.lab.test", source)[2]
    )
    assert (
        http_get(lab_info, "ok.lab.test", source)[2] == http_get(lab_info, "ok.lab.test", source)[2]
    )


def test_redirect_site_answers_301(lab_info: LabInfo) -> None:
    status, headers, _ = http_get(lab_info, "redirect.lab.test", other_source(lab_info))
    assert status == 301 and headers["Location"] == "https://ok.lab.test/"


def test_cdn_edge_serves_the_same_site_with_a_valid_certificate(lab_info: LabInfo) -> None:
    with tls_handshake(
        lab_info, lab_info.cdn_edge_ip, "cdn.lab.test", lab_info.censored_source
    ) as tls:
        assert common_name(peer_certificate(tls).subject) == "cdn.lab.test"


def test_blockpage_server_serves_the_blockpage(lab_info: LabInfo) -> None:
    connection = http.client.HTTPConnection(lab_info.blockpage_ip, 80, timeout=TIMEOUT)
    connection.request("GET", "/", headers={"Host": "dns-blockpage.lab.test"})
    assert BLOCKPAGE_PHRASE in connection.getresponse().read().decode()
    connection.close()


def test_down_site_refuses_everyone(lab_info: LabInfo) -> None:
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((lab_info.dead_ip, 443), timeout=TIMEOUT).close()


# -- TLS middleboxes -----------------------------------------------------------------------------
def test_tls_reset_resets_the_blocked_sni_from_the_censored_vantage_only(lab_info: LabInfo) -> None:
    address = lab_info.site_addresses["tls-reset.lab.test"]
    with pytest.raises(ConnectionResetError):
        tls_handshake(lab_info, address, "tls-reset.lab.test", lab_info.censored_source)
    tls_handshake(lab_info, address, "example.org", lab_info.censored_source, verify=False).close()
    tls_handshake(lab_info, address, "tls-reset.lab.test", other_source(lab_info)).close()


def test_tls_timeout_black_holes_the_blocked_sni_but_not_another(lab_info: LabInfo) -> None:
    address = lab_info.site_addresses["tls-timeout.lab.test"]
    with pytest.raises(TimeoutError):
        tls_handshake(lab_info, address, "tls-timeout.lab.test", lab_info.censored_source)
    tls_handshake(lab_info, address, "example.org", lab_info.censored_source, verify=False).close()
    tls_handshake(lab_info, address, None, lab_info.censored_source, verify=False).close()
    tls_handshake(lab_info, address, "tls-timeout.lab.test", other_source(lab_info)).close()


def test_tls_mitm_presents_a_forged_leaf_from_the_rogue_ca(lab_info: LabInfo) -> None:
    address = lab_info.site_addresses["tls-mitm.lab.test"]
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_handshake(lab_info, address, "tls-mitm.lab.test", lab_info.censored_source)
    with tls_handshake(
        lab_info, address, "tls-mitm.lab.test", lab_info.censored_source, verify=False
    ) as tls:
        forged = peer_certificate(tls)
    assert common_name(forged.issuer) == "Security Certificate"
    assert common_name(forged.subject) == "tls-mitm.lab.test"
    with tls_handshake(lab_info, address, "tls-mitm.lab.test", other_source(lab_info)) as tls:
        assert common_name(peer_certificate(tls).issuer) == "blockmon lab root CA"


# -- HTTP middleboxes ----------------------------------------------------------------------------
def test_http_reset_and_timeout_hit_the_censored_vantage_only(lab_info: LabInfo) -> None:
    with pytest.raises(ConnectionResetError):
        http_get(lab_info, "http-reset.lab.test", lab_info.censored_source)
    with pytest.raises(TimeoutError):
        http_get(lab_info, "http-timeout.lab.test", lab_info.censored_source)
    for hostname in ("http-reset.lab.test", "http-timeout.lab.test"):
        assert http_get(lab_info, hostname, other_source(lab_info))[0] == 200
        # HTTPS hides the Host from this middlebox.
        assert http_get(lab_info, hostname, lab_info.censored_source, https=True)[0] == 200


def test_http_blockpage_and_diff_change_the_page_for_the_censored_vantage(
    lab_info: LabInfo,
) -> None:
    censored, other = lab_info.censored_source, other_source(lab_info)
    assert BLOCKPAGE_PHRASE in http_get(lab_info, "http-blockpage.lab.test", censored)[2]
    assert BLOCKPAGE_PHRASE not in http_get(lab_info, "http-blockpage.lab.test", other)[2]
    doctored = http_get(lab_info, "http-diff.lab.test", censored)[2]
    real = http_get(lab_info, "http-diff.lab.test", other)[2]
    assert BLOCKPAGE_PHRASE not in doctored
    assert title(doctored) != title(real) and len(doctored) < 0.7 * len(real)


# -- IP blocking (nftables) ----------------------------------------------------------------------
@pytest.mark.usefixtures("lab_requires_firewall")
def test_tcp_reset_refuses_and_tcp_timeout_drops_the_censored_vantage_only(
    lab_info: LabInfo,
) -> None:
    with pytest.raises(ConnectionRefusedError):
        connect(lab_info, "tcp-reset.lab.test", 443, lab_info.censored_source)
    with pytest.raises(TimeoutError):
        connect(lab_info, "tcp-timeout.lab.test", 80, lab_info.censored_source)
    connect(lab_info, "tcp-reset.lab.test", 443, other_source(lab_info)).close()
    connect(lab_info, "tcp-timeout.lab.test", 80, other_source(lab_info)).close()


# -- control channel -----------------------------------------------------------------------------
@pytest.mark.usefixtures("lab_requires_firewall")
def test_policies_change_while_the_lab_runs(lab_info: LabInfo, lab_policy) -> None:  # type: ignore[no-untyped-def]
    lab_policy("ok.lab.test", "dns.nxdomain")
    assert resolve(lab_info, lab_info.censored_resolver, "ok.lab.test") == ("NXDOMAIN", [])
    lab_policy("ok.lab.test", "tcp.reset")
    with pytest.raises(ConnectionRefusedError):
        connect(lab_info, "ok.lab.test", 80, lab_info.censored_source)
    lab_policy("ok.lab.test", "none")
    connect(lab_info, "ok.lab.test", 80, lab_info.censored_source).close()


def test_control_refuses_unknown_policies_and_hostnames_by_name(lab_info: LabInfo) -> None:
    with pytest.raises(LabControlError, match="'tls.slow'"):
        set_lab_policy(lab_info, "ok.lab.test", "tls.slow")
    with pytest.raises(LabControlError, match="nowhere.lab.test"):
        set_lab_policy(lab_info, "nowhere.lab.test", "none")


# -- the in-process API the benchmarks use -------------------------------------------------------
async def test_in_process_lab_serves_bulk_sites_and_cleans_up(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    import asyncio

    async with Lab(tmp_path, catalogue=False, bulk_sites=3, control=False) as lab:
        info = lab.info
        assert sorted(info.hosts) == [f"site{n}.bulk.lab.test" for n in (1, 2, 3)]
        reader, writer = await asyncio.open_connection(
            info.site_addresses["site2.bulk.lab.test"], 80
        )
        writer.write(
            b"GET /page/1 HTTP/1.1\r\nHost: site2.bulk.lab.test\r\nConnection: close\r\n\r\n"
        )
        response = (await asyncio.wait_for(reader.read(), 5)).decode()
        writer.close()
        assert (
            response.startswith("HTTP/1.1 200") and "<title>site2.bulk.lab.test</title>" in response
        )
        table = f"blockmon_lab_{info.prefix.split('.')[1]}_{info.prefix.split('.')[2]}"
    listing = await asyncio.create_subprocess_exec(
        "nft", "list", "tables", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    assert table not in (await listing.communicate())[0].decode()


async def test_without_nftables_tcp_policies_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    monkeypatch.setattr("lab.firewall.shutil.which", lambda name: None)
    async with Lab(tmp_path / "catalogue", control=False) as lab:
        info = lab.info
        assert "nft" in info.unavailable_policies["tcp.reset"]
        assert "tcp-reset.lab.test" not in info.hosts and "ok.lab.test" in info.hosts
        with pytest.raises(FirewallUnavailable, match="unavailable"):
            await lab.set_policy("ok.lab.test", "tcp.timeout")
        assert lab.info.hosts["ok.lab.test"] == "none"
    with pytest.raises(LabError, match="www.azattyq.org"):
        async with Lab(
            tmp_path / "asked", catalogue=False, extra_hosts={"www.azattyq.org": "tcp.reset"}
        ):
            pass


def test_lab_info_round_trips_and_names_a_missing_key(lab_info: LabInfo) -> None:
    assert LabInfo.from_json(lab_info.to_json()) == lab_info
    assert lab_info.hostname_for("tls.mitm") == "tls-mitm.lab.test"
    text = lab_info.to_json().replace('"ca_file"', '"ca_path"')
    with pytest.raises(ValueError, match="'ca_file' missing"):
        LabInfo.from_json(text)


def test_docs_describe_every_policy_catalogue_host_and_cli_option() -> None:
    from lab import DEFAULT_CATALOGUE, POLICIES

    text = (Path(__file__).resolve().parents[1] / "docs" / "lab.md").read_text()
    table_rows = {
        line.split("|")[1].strip().strip("`")
        for line in text.splitlines()
        if line.startswith("| `")
    }
    assert set(POLICIES) <= table_rows, set(POLICIES) - table_rows
    for hostname in DEFAULT_CATALOGUE:
        assert f"`{hostname.removesuffix('.lab.test')}`" in text or hostname in text, hostname
    for option in ("--workdir", "--info-file", "--host", "--redirect", "--bulk-sites"):
        assert option in text, option


def test_blockmon_lab_command_takes_hosts_and_redirects_and_cleans_up_on_sigterm(
    tmp_path: Path,
) -> None:
    if os.geteuid() != 0:
        pytest.skip("the lab needs root")
    from tests.fixtures.lab import start_lab_process, stop_lab_process

    process, info = start_lab_process(
        tmp_path,
        "--host", "www.azattyq.org=tls.timeout",
        "--redirect", "azattyq.org=https://www.azattyq.org/",
        "--bulk-sites", "2",
    )  # fmt: skip
    try:
        assert info.hosts["www.azattyq.org"] == "tls.timeout"
        assert info.hosts["site2.bulk.lab.test"] == "none"
        assert (
            http_get(info, "azattyq.org", other_source(info))[1]["Location"]
            == "https://www.azattyq.org/"
        )
        with pytest.raises(TimeoutError):
            tls_handshake(
                info,
                info.site_addresses["www.azattyq.org"],
                "www.azattyq.org",
                info.censored_source,
            )
    finally:
        stop_lab_process(process)
    assert process.returncode == 0
    prefix_parts = info.prefix.split(".")
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert f"blockmon_lab_{prefix_parts[1]}_{prefix_parts[2]}" not in tables
