"""The control step's fast paths against the generic code they replace: same answers accepted,
same ones refused with the same words, the same request bytes on the wire."""

from __future__ import annotations

import asyncio
import json
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from probes.control_client import ControlClient
from probes.control_protocol import (
    ControlAnswer,
    ControlAnswerError,
    _typed_dict_error,
    build_control_request,
    control_shape_error,
    encode_control_request,
    parse_control_answer,
)
from probes.http import REQUEST_HEADERS

LOOPBACK = "127.0.0.1"
GOLDEN = Path(__file__).parent / "golden"

# ---------------------------------------------------------------- the reference: the generic code
# The generic check as probes/control_protocol.py had it before the generated one (a copy: the
# oracle must not move with the code under test). The walk that names a refused answer's field
# is the module's own: it did not change, and both paths word their refusals with it.


def _reference_conforms(hint: Any) -> Callable[[object], bool]:
    origin = typing.get_origin(hint)
    optional = False
    if origin is types.UnionType or origin is typing.Union:
        choices = typing.get_args(hint)
        optional = type(None) in choices
        (hint,) = (choice for choice in choices if choice is not type(None))
        origin = typing.get_origin(hint)
    check: Callable[[object], bool]
    if typing.is_typeddict(hint):
        fields = [(name, _reference_conforms(field)) for name, field in typing.get_type_hints(hint).items()]

        def check(value: object) -> bool:
            return isinstance(value, dict) and all(name not in value or ok(value[name]) for name, ok in fields)

    elif origin is list:
        item = _reference_conforms(typing.get_args(hint)[0])

        def check(value: object) -> bool:
            return isinstance(value, list) and all(item(element) for element in value)

    elif origin is dict:
        item = _reference_conforms(typing.get_args(hint)[1])

        def check(value: object) -> bool:
            return (isinstance(value, dict) and all(isinstance(key, str) for key in value)
                    and all(item(element) for element in value.values()))

    elif hint is int:

        def check(value: object) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

    else:
        kind = hint

        def check(value: object) -> bool:
            return isinstance(value, kind)

    if not optional:
        return check
    return lambda value: value is None or check(value)


_REFERENCE_CHECK = _reference_conforms(ControlAnswer)


def reference_shape_error(answer: Mapping[str, object]) -> str | None:
    if _REFERENCE_CHECK(answer):
        return None
    return _typed_dict_error(answer, ControlAnswer, "")


def reference_parse(body: bytes) -> tuple[str, str]:
    """What the old parse_control_answer did with `body`: the answer's JSON, or its error's words."""
    try:
        answer = json.loads(body)
    except ValueError as error:
        return "error", f"not JSON ({error})"
    if not isinstance(answer, dict):
        return "error", "not a JSON object"
    wrong = reference_shape_error(answer)
    if wrong is not None:
        return "error", f"{wrong}: not of the protocol's type"
    return "answer", json.dumps(answer)


def new_parse(body: bytes) -> tuple[str, str]:
    try:
        return "answer", json.dumps(parse_control_answer(body))
    except ControlAnswerError as error:
        return "error", str(error)


def outcome(check: Callable[[Any], str | None], answer: Any) -> object:
    """What `check` returns, or the exception it raises (type and words)."""
    try:
        return check(answer)
    except Exception as error:  # noqa: BLE001 -- an error is an outcome to compare too
        return type(error), str(error)


# ---------------------------------------------------------------- answers: valid and mutated

_json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8))
any_json = st.recursive(
    _json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def value_of(hint: Any, mutate: bool) -> st.SearchStrategy[Any]:
    """Values of type `hint`; with `mutate`, any value anywhere may be any JSON value instead."""
    right = _right_value_of(hint, mutate)
    return st.one_of(right, right, right, any_json) if mutate else right


def _right_value_of(hint: Any, mutate: bool) -> st.SearchStrategy[Any]:
    origin = typing.get_origin(hint)
    if origin is types.UnionType or origin is typing.Union:
        (inner,) = (choice for choice in typing.get_args(hint) if choice is not type(None))
        return st.none() | _right_value_of(inner, mutate)
    if typing.is_typeddict(hint):
        fields = {name: value_of(field, mutate) for name, field in typing.get_type_hints(hint).items()}
        known = st.fixed_dictionaries({}, optional=fields)
        # A helper may add fields of its own, of any type.
        return st.builds(lambda a, b: {**b, **a}, known, st.dictionaries(st.text(max_size=6), any_json, max_size=2))
    if origin is list:
        return st.lists(value_of(typing.get_args(hint)[0], mutate), max_size=3)
    if origin is dict:
        return st.dictionaries(st.text(max_size=12), value_of(typing.get_args(hint)[1], mutate), max_size=3)
    scalars: dict[Any, st.SearchStrategy[Any]] = {
        str: st.text(max_size=12), int: st.integers(), float: st.floats(), bool: st.booleans(),
    }
    return scalars[hint]


valid_answers = value_of(ControlAnswer, mutate=False)
# An answer is a JSON object (parse_control_answer says so before it checks a field).
mutated_answers = _right_value_of(ControlAnswer, mutate=True)
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(valid_answers)
def test_a_valid_answer_is_accepted_as_before(answer: dict[str, Any]) -> None:
    assert control_shape_error(answer) is None
    assert new_parse(json.dumps(answer).encode()) == reference_parse(json.dumps(answer).encode())


@FUZZ
@given(mutated_answers)
def test_a_mutated_answer_gets_the_verdict_and_words_it_got_before(answer: dict[str, Any]) -> None:
    assert outcome(control_shape_error, answer) == outcome(reference_shape_error, answer)
    body = json.dumps(answer).encode()
    assert new_parse(body) == reference_parse(body)


def test_subclasses_and_non_json_values_are_judged_as_before() -> None:
    # Not what json.loads builds, but control_shape_error is also called on stored answers.
    class Text(str):
        pass

    class Flag(int):
        pass

    cases: list[Any] = [
        {"dns": {"failure": Text("x")}}, {"http_request": {"status_code": Flag(3)}},
        {"ip_info": {1: {"asn": 1}}}, {"dns": {"addrs": ("a",)}}, {"http_request": {"body_length": True}},
        {"x_blockmon": {"throughput": {"seconds": 1}}}, {"x_blockmon": {"throughput": {"bytes": None}}},
        {"x_blockmon": {"throughput": {"seconds": 1.0, "sample_bytes": [1, 2.0]}}},
        types.MappingProxyType({"dns": {"addrs": ["a"]}}), types.MappingProxyType({"dns": 3}),
    ]
    for answer in cases:
        assert outcome(control_shape_error, answer) == outcome(reference_shape_error, answer), answer


@FUZZ
@given(mutated_answers, st.sampled_from(["plain", "spaces", "bom", "utf-16", "utf-32", "cut", "extra"]))
def test_an_answer_s_bytes_in_any_shape_are_read_as_before(answer: dict[str, Any], shape: str) -> None:
    text = json.dumps(answer)
    body = {
        "plain": text.encode(), "spaces": f" \n{text}\t ".encode(), "bom": b"\xef\xbb\xbf" + text.encode(),
        "utf-16": text.encode("utf-16-le"), "utf-32": text.encode("utf-32"),
        "cut": text.encode()[: len(text) // 2], "extra": text.encode() + b"{}",
    }[shape]
    assert new_parse(body) == reference_parse(body)


@FUZZ
@given(st.binary(max_size=40))
def test_any_bytes_are_read_as_before(tail: bytes) -> None:
    for body in (tail, b'{"' + tail, b'{"dns": ' + tail):
        assert new_parse(body) == reference_parse(body)


def test_every_golden_control_parses_as_before() -> None:
    for path in sorted(GOLDEN.glob("*.json")):
        control = json.loads(path.read_text(encoding="utf-8"))["test_keys"].get("control") or {}
        body = json.dumps(control).encode()
        assert new_parse(body) == reference_parse(body) == ("answer", json.dumps(control)), path.name


# ---------------------------------------------------------------- the request's bytes

_urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}/{path}",
    st.sampled_from(["http", "https", "HTTPS"]),
    st.sampled_from(["a.kz", "www.azattyq.org", "[2001:db8::1]", "192.0.2.1", "user:pw@b.kz"]),
    st.sampled_from(["", ":8443", ":80", ":443"]),
    st.text(max_size=20),
)
_addresses = st.lists(st.ip_addresses().map(str), max_size=4)
_headers = st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=4)


@FUZZ
@given(_urls, _addresses, _headers)
def test_the_request_bytes_are_json_dumps_of_the_request(url: str, addresses: list[str],
                                                         headers: dict[str, str]) -> None:
    assert encode_control_request(url, addresses, headers) == json.dumps(
        build_control_request(url, addresses, headers)).encode()


def test_the_probe_s_own_request_bytes_are_as_before() -> None:
    url = "https://www.azattyq.org/news?x=1"
    body = encode_control_request(url, ["192.0.2.10", "2001:db8::1"], REQUEST_HEADERS)
    assert body == json.dumps(build_control_request(url, ["192.0.2.10", "2001:db8::1"], REQUEST_HEADERS)).encode()


# ---------------------------------------------------------------- the POST's bytes on the wire


async def test_the_post_s_bytes_on_the_wire_name_the_helper_url_s_host_and_target() -> None:
    received: list[bytes] = []
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"

    async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):  # two POSTs over one kept-alive connection
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            received.append(head + await reader.readexactly(length))
            writer.write(answer)
        writer.close()

    server = await asyncio.start_server(record, LOOPBACK, 0)
    port = server.sockets[0].getsockname()[1]
    url = f"http://user@{LOOPBACK}:{port}/api/v1/control?a=b"
    try:
        async with ControlClient() as client:
            for _ in range(2):
                reply = await client.post(url, b'{"x": 1}', {"Content-Type": "application/json"},
                                          timeout=5, limit=1000)
                assert (reply.status, reply.body) == (200, b"{}")
    finally:
        server.close()
        await server.wait_closed()
    expected = (f"POST /api/v1/control?a=b HTTP/1.1\r\nHost: {LOOPBACK}:{port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: 8\r\n\r\n").encode() + b'{"x": 1}'
    assert received == [expected, expected]
