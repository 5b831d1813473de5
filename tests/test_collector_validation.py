"""Pure checks of collector input: bodies, batches, measurements, registrations, tokens."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from monitor.collector.auth import bearer_token, hash_secret, mint_token, secret_matches
from monitor.collector.validation import (
    BatchLimits,
    RegisteredProbe,
    Rejection,
    check_batch,
    check_registration,
    check_stored_sizes,
    parse_json_object,
)
from monitor.store.database import DatabaseUrl
from tests.fixtures.collector import sample_measurement

NOW = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)
LIMITS = BatchLimits(max_batch_length=5)


PROBE = RegisteredProbe("kz-almaty-1", "KZ", "AS9198", "JSC Kazakhtelecom")


def check(measurements: list[object], probe: RegisteredProbe = PROBE) -> object:
    return check_batch({"measurements": measurements}, probe=probe, now=NOW, limits=LIMITS)


def good(number: int = 0, **changes: object) -> dict[str, object]:
    measurement = sample_measurement(number, started=NOW - timedelta(minutes=3))
    measurement.update(changes)
    return measurement


def test_a_good_batch_is_kept_with_the_probe_fields_pinned() -> None:
    sent = good(probe_ip="198.51.100.7")
    del sent["annotations"]["vantage_id"]  # type: ignore[attr-defined]
    result = check([sent])
    assert isinstance(result, list) and len(result) == 1
    assert result[0]["probe_ip"] == "127.0.0.1"
    assert result[0]["annotations"]["vantage_id"] == "kz-almaty-1"
    assert result[0]["measurement_uid"] == sent["measurement_uid"]


def test_where_a_measurement_was_taken_comes_from_the_registration() -> None:
    relabelled = check([good(probe_network_name="Some Other ISP")], RegisteredProbe(
        "kz-almaty-1", "KZ", "AS9198", "Kazakhtelecom (registered)"))
    assert isinstance(relabelled, list)
    assert relabelled[0]["probe_network_name"] == "Kazakhtelecom (registered)"
    elsewhere = RegisteredProbe("kz-almaty-1", "RU", "AS12389", "Rostelecom")
    wrong_country = check([good(0)], elsewhere)
    assert isinstance(wrong_country, Rejection)
    assert (wrong_country.status, wrong_country.field) == (403, "measurements[0].probe_cc")
    assert "'RU'" in wrong_country.error
    wrong_network = check([good(0)], RegisteredProbe("kz-almaty-1", "KZ", "AS21299"))
    assert isinstance(wrong_network, Rejection)
    assert (wrong_network.status, wrong_network.field) == (403, "measurements[0].probe_asn")


@pytest.mark.parametrize(
    ("change", "field", "status"),
    [
        ({"measurement_uid": None}, "measurements[1].measurement_uid", 400),
        ({"measurement_uid": "a b; DROP TABLE measurements;--"}, "measurements[1].measurement_uid", 400),
        ({"probe_cc": 7}, "measurements[1].probe_cc", 400),
        ({"probe_cc": "kz"}, "measurements[1].probe_cc", 400),
        ({"probe_asn": "9198"}, "measurements[1].probe_asn", 400),
        ({"test_name": "ndt"}, "measurements[1].test_name", 400),
        ({"input": "javascript:alert(1)"}, "measurements[1].input", 400),
        ({"measurement_start_time": "yesterday"}, "measurements[1].measurement_start_time", 400),
        ({"test_runtime": "fast"}, "measurements[1].test_runtime", 400),
        ({"test_keys": []}, "measurements[1].test_keys", 400),
        ({"annotations": "x"}, "measurements[1].annotations", 400),
        ({"annotations": {"vantage_id": "kz-other"}}, "measurements[1].annotations.vantage_id", 403),
        ({"probe_cc": "RU"}, "measurements[1].probe_cc", 403),
        ({"probe_asn": "AS12389"}, "measurements[1].probe_asn", 403),
    ],
)
def test_one_bad_measurement_refuses_the_batch_naming_it(
    change: dict[str, object], field: str, status: int
) -> None:
    bad = good(1, **change)
    if change.get("measurement_uid", "") is None:
        del bad["measurement_uid"]
    result = check([good(0), bad, good(2)])
    assert isinstance(result, Rejection)
    assert (result.status, result.field, result.index) == (status, field, 1)


@pytest.mark.parametrize(
    ("where", "key", "value", "field"),
    [
        ("annotations", "target_id", {"a": 1}, "annotations.target_id"),
        ("annotations", "list", ["briefing"], "annotations.list"),
        ("test_keys", "blocking", True, "test_keys.blocking"),
        ("test_keys", "accessible", "no", "test_keys.accessible"),
        ("test_keys", "blocking_method", {"x": 1}, "test_keys.blocking_method"),
        ("test_keys", "control_failure", 5, "test_keys.control_failure"),
        ("test_keys", "fingerprint", "kz-blockpage", "test_keys.fingerprint"),
        ("test_keys", "fingerprint", {"id": 7}, "test_keys.fingerprint.id"),
    ],
)
def test_values_the_store_keeps_in_columns_must_have_their_type(
    where: str, key: str, value: object, field: str
) -> None:
    bad = good(1)
    bad[where][key] = value  # type: ignore[index]
    result = check([good(0), bad])
    assert isinstance(result, Rejection)
    assert (result.status, result.field, result.index) == (400, f"measurements[1].{field}", 1)


def test_text_a_database_cannot_store_is_refused_with_400() -> None:
    nul_url = check([good(0), good(1, input="https://www.azattyq.org/\x00")])
    assert isinstance(nul_url, Rejection)
    assert (nul_url.status, nul_url.field) == (400, "measurements[1].input")
    nul_list = good(1)
    nul_list["annotations"]["list"] = "brief\x00ing"  # type: ignore[index]
    refused = check([nul_list])
    assert isinstance(refused, Rejection) and refused.field == "measurements[0].annotations.list"
    # NUL deep inside test_keys is fine: the JSON column keeps it escaped as \u0000.
    assert isinstance(check([good(2, test_keys={"blocking": False, "body": "a\x00b"})]), list)

    lone = good(3, test_keys={"blocking": False, "body": "\ud800 half a pair"})
    paired = good(4, test_keys={"blocking": False, "body": "\U0001f600 kept"})
    measurements = check([paired, lone])
    assert isinstance(measurements, list)
    texts = [json.dumps(m, ensure_ascii=False) for m in measurements]
    result = check_stored_sizes(measurements, texts, BatchLimits())
    assert isinstance(result, Rejection)
    assert (result.status, result.index, result.field) == (400, 1, "measurements[1]")
    assert "surrogate" in result.error
    assert check_stored_sizes(measurements[:1], texts[:1], BatchLimits()) is None


def test_column_values_of_the_right_type_are_kept() -> None:
    fine = good(1)
    fine["test_keys"].update(  # type: ignore[attr-defined]
        blocking=False, accessible=True, blocking_method=None, fingerprint={"id": "kz-page"})
    fine["annotations"]["list"] = None  # type: ignore[index]
    result = check([fine])
    assert isinstance(result, list) and result[0]["test_keys"]["fingerprint"] == {"id": "kz-page"}


@pytest.mark.parametrize(("sent", "stored"), [("2", 2), (1, 1), (None, 0), ("x", 0), (-1, 0)])
def test_the_retest_number_of_an_upload_is_stored(sent: object, stored: int) -> None:
    from monitor.collector.routes import storable_row

    measurement = good(1)
    if sent is not None:  # the runner writes the n-th re-test as the annotation string "n"
        measurement["annotations"]["confirmation"] = sent  # type: ignore[index]
    (checked,) = check([measurement])  # type: ignore[misc]
    assert storable_row(checked)["confirmation"] == stored


def test_timestamps_in_the_future_or_too_old_are_refused() -> None:
    future = good(measurement_start_time=(NOW + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S"))
    old = good(measurement_start_time=(NOW - timedelta(days=365)).strftime("%Y-%m-%d %H:%M:%S"))
    skewed = good(measurement_start_time=(NOW + timedelta(minutes=2)).strftime("%Y-%m-%d %H:%M:%S"))
    assert "future" in check([future]).error  # type: ignore[union-attr]
    assert "older" in check([old]).error  # type: ignore[union-attr]
    assert isinstance(check([skewed]), list)


def test_batch_shape_and_length_are_checked() -> None:
    assert check_batch({}, probe=PROBE, now=NOW, limits=LIMITS).field == "measurements"  # type: ignore[union-attr]
    assert check([]).field == "measurements"  # type: ignore[union-attr]
    too_many = check([good(n) for n in range(6)])
    assert isinstance(too_many, Rejection) and too_many.status == 413
    assert check(["not an object"]).field == "measurements[0]"  # type: ignore[union-attr]


def test_the_same_uid_twice_in_a_batch_is_kept_once() -> None:
    result = check([good(3), good(3), good(4)])
    assert isinstance(result, list)
    assert [m["measurement_uid"] for m in result] == [good(3)["measurement_uid"], good(4)["measurement_uid"]]


def test_oversized_measurement_is_refused() -> None:
    measurements = [good(0), good(1)]
    texts = ["{}", "x" * 5000]
    result = check_stored_sizes(measurements, texts, BatchLimits(max_measurement_bytes=4000))
    assert isinstance(result, Rejection) and "larger" in result.error
    assert (result.status, result.index, result.measurement_uid) == (
        413, 1, measurements[1]["measurement_uid"])
    assert check_stored_sizes(measurements, texts, BatchLimits(max_measurement_bytes=5000)) is None


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[1, 2]", "must be a JSON object"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    ],
)
def test_bodies_that_are_not_one_json_object_are_refused(body: bytes, words: str) -> None:
    result = parse_json_object(body)
    assert isinstance(result, Rejection) and result.status == 400
    assert words in result.error


def test_registration_checks_each_field() -> None:
    base = {"enrolment_secret": "bme_x", "vantage_id": "kz-almaty-1", "probe_cc": "KZ",
            "probe_asn": "AS9198"}
    assert check_registration(base) == {**base, "probe_network_name": ""}
    for field, value in [("enrolment_secret", ""), ("vantage_id", "Bad Name"),
                         ("vantage_id", "x" * 65), ("probe_cc", "Kazakhstan"), ("probe_asn", 9198)]:
        result = check_registration({**base, field: value})
        assert isinstance(result, Rejection) and result.field == field


def test_tokens_are_random_and_checked_by_hash() -> None:
    token = mint_token()
    assert token != mint_token() and len(token) > 40
    stored = hash_secret(token)
    assert token not in stored and secret_matches(token, stored)
    assert not secret_matches(token + "x", stored)


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None),
     (None, None), ("Bearer " + "a" * 300, None)],
)
def test_bearer_header_is_parsed_strictly(header: str | None, token: str | None) -> None:
    assert bearer_token(header) == token


def test_database_urls_pick_the_backend_and_hide_passwords() -> None:
    assert DatabaseUrl.parse("sqlite:////tmp/x.db") == DatabaseUrl("sqlite", "/tmp/x.db")
    assert DatabaseUrl.parse("data/x.db").dialect == "sqlite"
    url = DatabaseUrl.parse("postgresql://blockmon:hunter2@db:5432/blockmon")
    assert url.dialect == "postgres" and "hunter2" not in url.describe()
    in_query = DatabaseUrl.parse("postgresql://db:5432/blockmon?user=bm&password=hunter2&sslmode=require")
    assert in_query.describe() == "postgresql://db:5432/blockmon?user=bm&password=***&sslmode=require"
    with pytest.raises(ValueError) as refused:
        DatabaseUrl.parse("mysql://bm:hunter2@db/x")
    assert "hunter2" not in str(refused.value)
    with pytest.raises(ValueError, match="mysql://"):
        DatabaseUrl.parse("mysql://x")
