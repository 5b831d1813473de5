"""The control protocol module: what the probe builds the helper parses, what the helper answers the probe accepts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from probes.control_protocol import (
    ControlAnswer,
    ControlAnswerError,
    RequestRefused,
    build_control_request,
    control_shape_error,
    parse_control_answer,
    parse_control_request,
)
from probes.endpoints import split_host_port
from probes.helper.answer import build_control_answer
from probes.helper.page import PageBody
from probes.helper.steps import EndpointCheck, TlsCheck
from probes.http import REQUEST_HEADERS


def test_a_request_the_probe_builds_is_what_the_helper_parses() -> None:
    request = build_control_request("https://www.azattyq.org:8443/news?x=1", ["192.0.2.10", "2001:db8::1"], REQUEST_HEADERS)
    # Over the wire and back, as between the two ends.
    parsed = parse_control_request(json.loads(json.dumps(request)), max_addresses=16)
    assert request["tcp_connect"] == ["192.0.2.10:8443", "[2001:db8::1]:8443"]
    assert request["x_quic_enabled"] is False
    assert parsed.url == "https://www.azattyq.org:8443/news?x=1"
    assert (parsed.scheme, parsed.host, parsed.port) == ("https", "www.azattyq.org", 8443)
    assert parsed.endpoints == ("192.0.2.10:8443", "[2001:db8::1]:8443")
    assert parsed.headers == REQUEST_HEADERS


def test_the_default_port_comes_from_the_scheme_on_both_ends() -> None:
    request = build_control_request("http://example.kz/", ["192.0.2.1"], {})
    assert request["tcp_connect"] == ["192.0.2.1:80"]
    assert parse_control_request(request, 16).port == 80
    assert parse_control_request({"http_request": "https://example.kz/"}, 16).port == 443


@pytest.mark.parametrize(
    ("payload", "status", "message"),
    [
        ([], 400, "body: expected a JSON object"),
        ({"http_request": 5}, 400, "http_request: expected a URL string"),
        ({"http_request": "gopher://a.kz/"}, 400, "http_request: only http and https URLs, not 'gopher'"),
        ({"http_request": "http://a.kz/", "tcp_connect": "1.2.3.4:80"}, 400, 'tcp_connect: expected a list of "ip:port"'),
        ({"http_request": "http://a.kz/", "tcp_connect": ["host.kz:80"]}, 400, "tcp_connect: 'host.kz:80' is not \"ip:port\""),
        ({"http_request": "http://a.kz/", "tcp_connect": ["1.2.3.4:0"]}, 400, "tcp_connect: '1.2.3.4:0' has no valid port"),
        ({"http_request": "http://a.kz/", "http_request_headers": ["x"]}, 400, "http_request_headers: expected an object"),
    ],
)
def test_a_bad_request_is_refused_naming_the_field(payload: Any, status: int, message: str) -> None:
    with pytest.raises(RequestRefused) as refused:
        parse_control_request(payload, 16)
    assert refused.value.status == status
    assert refused.value.reason.startswith(message)


def test_duplicate_endpoints_collapse_and_ipv6_is_written_in_brackets() -> None:
    parsed = parse_control_request(
        {"http_request": "http://a.kz/", "tcp_connect": ["[2001:DB8::1]:80", "[2001:db8::1]:80", "1.2.3.4:80"]}, 16
    )
    assert parsed.endpoints == ("[2001:db8::1]:80", "1.2.3.4:80")


@pytest.mark.parametrize(
    ("endpoint", "written"),
    [
        ("1.2.3.4:80", "1.2.3.4:80"),
        ("0.0.0.0:443", "0.0.0.0:443"),
        ("255.255.255.255:8080", "255.255.255.255:8080"),
        ("[::ffff:1.2.3.4]:80", "[::ffff:102:304]:80"),
    ],
)
def test_an_endpoint_is_written_as_ipaddress_writes_it(endpoint: str, written: str) -> None:
    assert parse_control_request({"http_request": "http://a.kz/", "tcp_connect": [endpoint]}, 16).endpoints == (written,)


@pytest.mark.parametrize("endpoint", ["01.2.3.4:80", "256.1.1.1:80", "1.2.3:80", "1.2.3.4.5:80", "1.2.3.\u0664:80"])
def test_an_ipv4_address_ipaddress_refuses_is_refused(endpoint: str) -> None:
    with pytest.raises(RequestRefused) as refused:
        parse_control_request({"http_request": "http://a.kz/", "tcp_connect": [endpoint]}, 16)
    assert refused.value.reason == f'tcp_connect: {endpoint!r} is not "ip:port"'


def test_forwarded_headers_in_their_order_the_last_of_a_name_sent_twice() -> None:
    headers = {"accept": ["a/1"], "Cookie": ["secret"], "User-Agent": ["UA"], "ACCEPT": ["a/2"],
               "Accept-Language": [5], "Host": ["evil.kz"]}
    parsed = parse_control_request({"http_request": "http://a.kz/", "http_request_headers": headers}, 16)
    assert list(parsed.headers.items()) == [("User-Agent", "UA"), ("Accept", "a/2")]


def _answer() -> ControlAnswer:
    check = EndpointCheck(True, None, TlsCheck("a.kz", None, [{"subject": "CN=a.kz", "issuer": "CN=CA", "sans": ["a.kz"]}]))
    return build_control_answer(
        addresses=["192.0.2.10"],
        dns_failure=None,
        given=["192.0.2.10"],
        checks=[("192.0.2.10:443", check)],
        page=(
            {"body_length": 10, "failure": None, "title": "A", "headers": {"Server": "x"},
             "status_code": 200, "discovered_h3_endpoint": ""},
            PageBody("ab" * 32, "0f", False),
        ),
        is_refused=lambda ip: False,
        asn_of=lambda ip: 64500,
    )


def test_an_answer_the_helper_builds_is_what_the_probe_accepts() -> None:
    answer = _answer()
    received = parse_control_answer(json.dumps(answer).encode())
    assert received == answer
    assert received["ip_info"] == {"192.0.2.10": {"asn": 64500, "flags": 1 | 2 | 8}}
    assert received["tls_handshake"] == {"192.0.2.10:443": {"server_name": "a.kz", "status": True, "failure": None}}
    assert received["x_blockmon"] is not None and received["x_blockmon"]["body_simhash"] == "0f"


def test_an_oohelperd_answer_without_our_extension_or_with_nulls_is_accepted() -> None:
    answer = {"dns": {"failure": "dns_nxdomain_error", "addrs": None}, "tcp_connect": {}, "http_request": None,
              "http3_request": None, "something_new": [1, 2]}
    assert control_shape_error(answer) is None
    assert parse_control_answer(json.dumps(answer).encode())["dns"] == answer["dns"]


@pytest.mark.parametrize(
    ("answer", "path"),
    [
        ({"dns": True}, "dns"),
        ({"dns": {"addrs": [1]}}, "dns.addrs"),
        ({"tcp_connect": {"1.2.3.4:80": {"status": "yes"}}}, "tcp_connect.1.2.3.4:80.status"),
        ({"tcp_connect": {"1.2.3.4:80": None}}, "tcp_connect.1.2.3.4:80"),
        ({"http_request": {"status_code": True}}, "http_request.status_code"),
        ({"http_request": {"body_length": 1.5}}, "http_request.body_length"),
        ({"http_request": {"headers": {"Server": ["x"]}}}, "http_request.headers.Server"),
        ({"ip_info": {"1.2.3.4": {"flags": "3"}}}, "ip_info.1.2.3.4.flags"),
        ({"x_blockmon": {"certificate_chains": {"e": [{"issuer": 7}]}}}, "x_blockmon.certificate_chains.e.issuer"),
        ({"x_blockmon": {"body_is_truncated": "no"}}, "x_blockmon.body_is_truncated"),
    ],
)
def test_an_answer_field_of_another_type_is_named(answer: dict[str, Any], path: str) -> None:
    assert control_shape_error(answer) == path
    with pytest.raises(ControlAnswerError, match=path.split(".")[0]):
        parse_control_answer(json.dumps(answer).encode())


@pytest.mark.parametrize(("body", "reason"), [(b"{not json", "not JSON"), (b"[1]", "not a JSON object")])
def test_an_answer_that_is_no_json_object_is_refused(body: bytes, reason: str) -> None:
    with pytest.raises(ControlAnswerError, match=reason):
        parse_control_answer(body)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), ("[::1]:9470", ("::1", 9470)), ("collector.kz:443", ("collector.kz", 443))],
)
def test_host_port_is_split_with_ipv6_brackets_removed(text: str, expected: tuple[str, int]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["nowhere", ":80", "[]:80", "host:", "host:http", "host:0", "host:65536", "host:-1"])
def test_what_is_not_host_port_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not HOST:PORT"):
        split_host_port(text)


def test_port_zero_only_when_asked_for() -> None:
    assert split_host_port("127.0.0.1:0", allow_port_zero=True) == ("127.0.0.1", 0)
