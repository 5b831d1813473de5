"""The collector API over HTTP against a real `blockmon collector` process (SQLite database)."""

from __future__ import annotations

import http.client
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.fixtures.collector import (
    CollectorProcess,
    http_json,
    register_probe,
    run_blockmon,
    sample_measurement,
)


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CollectorProcess]:
    workdir = tmp_path_factory.mktemp("collector")
    process = CollectorProcess(database=f"sqlite:///{workdir / 'collector.db'}", workdir=workdir)
    process.start()
    yield process
    process.stop()


def database_rows(collector: CollectorProcess, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(collector.database.removeprefix("sqlite:///")) as connection:
        return connection.execute(query).fetchall()


def submit(collector: CollectorProcess, token: str | None, measurements: list[object]) -> tuple[int, object]:
    return http_json("POST", f"{collector.url}/api/v1/measurements",
                     {"measurements": measurements}, token=token)


def test_health_answers(collector: CollectorProcess) -> None:
    assert http_json("GET", f"{collector.url}/api/v1/health") == (
        200, {"status": "ok", "database": "sqlite", "api": "v1"})


def test_a_batch_sent_twice_is_stored_once(collector: CollectorProcess) -> None:
    token = register_probe(collector, "kz-twice")
    batch = [sample_measurement(n, vantage_id="kz-twice") for n in range(3)]
    assert submit(collector, token, batch) == (200, {"received": 3, "stored": 3, "duplicates": 0})
    assert submit(collector, token, batch) == (200, {"received": 3, "stored": 0, "duplicates": 3})
    rows = database_rows(collector, "SELECT vantage_id, json FROM measurements "
                                    "WHERE vantage_id = 'kz-twice'")
    assert len(rows) == 3
    assert all(json.loads(row[1])["probe_ip"] == "127.0.0.1" for row in rows)


def test_tokens_are_stored_hashed(collector: CollectorProcess) -> None:
    token = register_probe(collector, "kz-hashed")
    stored = database_rows(collector, "SELECT token_hash FROM probe_tokens")
    assert stored and all(token not in row[0] for row in stored)
    log = collector.log_path.read_text() if collector.log_path else ""
    assert token not in log
    assert "127.0.0.1 [" not in log  # the access log leaves client addresses out


def test_missing_wrong_and_revoked_tokens_are_refused(collector: CollectorProcess) -> None:
    batch = [sample_measurement(10, vantage_id="kz-revoked")]
    status, body = submit(collector, None, batch)
    assert (status, body["field"]) == (401, "Authorization")
    status, body = submit(collector, "bmp_not-a-real-token", batch)
    assert (status, body["field"]) == (401, "Authorization")

    token = register_probe(collector, "kz-revoked")
    assert submit(collector, token, batch)[0] == 200
    result = run_blockmon("collector", "revoke", "kz-revoked", "--database", collector.database,
                          cwd=collector.workdir)
    assert result.returncode == 0, result.stderr
    status, body = submit(collector, token, batch)
    assert status == 403 and "revoked" in body["error"]
    status, _ = http_json("POST", f"{collector.url}/api/v1/check-in", {}, token=token)
    assert status == 403
    unknown = run_blockmon("collector", "revoke", "kz-nobody", "--database", collector.database,
                           cwd=collector.workdir)
    assert unknown.returncode != 0 and "kz-nobody" in unknown.stderr


def test_a_probe_cannot_submit_as_another(collector: CollectorProcess) -> None:
    token = register_probe(collector, "kz-honest")
    forged = sample_measurement(20, vantage_id="kz-victim")
    status, body = submit(collector, token, [sample_measurement(21, vantage_id="kz-honest"), forged])
    assert status == 403
    assert body["field"] == "measurements[1].annotations.vantage_id" and body["index"] == 1
    # All or nothing: the good first measurement of the refused batch was not stored either.
    assert database_rows(collector, "SELECT COUNT(*) FROM measurements "
                                    "WHERE vantage_id IN ('kz-honest', 'kz-victim')") == [(0,)]


def test_probe_fields_come_from_the_registration(collector: CollectorProcess) -> None:
    token = register_probe(collector, "kz-where", network_name="Kazakhtelecom (registered)")
    moved = sample_measurement(22, vantage_id="kz-where")
    moved["probe_asn"] = "AS12389"
    status, body = submit(collector, token, [moved])
    assert (status, body["field"]) == (403, "measurements[0].probe_asn")
    sent = sample_measurement(23, vantage_id="kz-where")
    sent["probe_ip"] = "198.51.100.7"
    sent["probe_network_name"] = "Claimed ISP"
    assert submit(collector, token, [sent])[0] == 200
    [(network, cc, asn, stored)] = database_rows(
        collector, "SELECT probe_network_name, probe_cc, probe_asn, json FROM measurements "
                   "WHERE vantage_id = 'kz-where'")
    assert (network, cc, asn) == ("Kazakhtelecom (registered)", "KZ", "AS9198")
    assert json.loads(str(stored))["probe_ip"] == "127.0.0.1"


def test_enrolment_secrets_are_single_use_and_vantage_ids_unique(collector: CollectorProcess) -> None:
    secret = collector.enrol()
    request = {"enrolment_secret": secret, "vantage_id": "kz-single", "probe_cc": "KZ",
               "probe_asn": "AS9198"}
    assert http_json("POST", f"{collector.url}/api/v1/register", request)[0] == 201
    status, body = http_json("POST", f"{collector.url}/api/v1/register", request)
    assert (status, body["field"]) == (403, "enrolment_secret")
    second = {**request, "enrolment_secret": collector.enrol()}
    status, body = http_json("POST", f"{collector.url}/api/v1/register", second)
    assert (status, body["field"]) == (409, "vantage_id")
    bound = collector.enrol("--vantage", "kz-bound")
    status, body = http_json("POST", f"{collector.url}/api/v1/register",
                             {**request, "enrolment_secret": bound, "vantage_id": "kz-other"})
    assert (status, body["field"]) == (403, "vantage_id")


def test_check_in_hands_out_the_latest_target_list(collector: CollectorProcess, tmp_path: Path) -> None:
    token = register_probe(collector, "kz-checkin")
    registry = tmp_path / "registry.toml"
    registry.write_text('[[target]]\nid = "azattyq"\nname = "Azattyq"\ncategory_code = "NEWS"\n'
                        '[[target.url]]\nurl = "https://www.azattyq.org/"\nrole = "home"\n')
    published = run_blockmon("collector", "publish-targets", str(registry), "--interval-minutes",
                             "30", "--database", collector.database, cwd=collector.workdir)
    assert published.returncode == 0, published.stderr
    status, body = http_json("POST", f"{collector.url}/api/v1/check-in",
                             {"software_version": "0.1.0", "targets_version": None}, token=token)
    assert status == 200 and body["probe_id"] == "kz-checkin"
    version = body["targets_version"]
    assert body["targets"]["content"] == registry.read_text()
    assert body["targets"]["schedule"]["interval_minutes"] == 30
    status, body = http_json("POST", f"{collector.url}/api/v1/check-in",
                             {"targets_version": version}, token=token)
    assert status == 200 and body["targets"] is None and body["targets_version"] == version
    status, body = http_json("POST", f"{collector.url}/api/v1/check-in",
                             {"targets_version": "latest"}, token=token)
    assert (status, body["field"]) == (400, "targets_version")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[target")
    refused = run_blockmon("collector", "publish-targets", str(bad), "--database",
                           collector.database, cwd=collector.workdir)
    assert refused.returncode != 0 and "bad.toml" in refused.stderr
    # Valid TOML that every probe would refuse at check-in is not published either.
    unusable = tmp_path / "unusable.toml"
    unusable.write_text('[[target]]\nid = "azattyq"\nurls = ["https://www.azattyq.org/"]\n')
    refused = run_blockmon("collector", "publish-targets", str(unusable), "--database",
                           collector.database, cwd=collector.workdir)
    assert refused.returncode != 0
    assert f"not published: {unusable}:3: unknown key 'urls'" in refused.stderr
    no_such_list = run_blockmon("collector", "publish-targets", str(registry), "--lists", "kz",
                                "--database", collector.database, cwd=collector.workdir)
    assert no_such_list.returncode != 0 and "not among the scheduled lists" in no_such_list.stderr
    status, body = http_json("POST", f"{collector.url}/api/v1/check-in",
                             {"targets_version": version}, token=token)
    assert status == 200 and body["targets_version"] == version


HOSTILE_BODIES: list[tuple[bytes, int, str]] = [
    (b"{\"measurements\": [", 400, "body"),
    (b"null", 400, "body"),
    (b"[" * 50_000 + b"]" * 50_000, 400, "body"),
    (b'{"measurements": "all of them"}', 400, "measurements"),
    (b'{"measurements": [' + b",".join([b"{}"] * 5000) + b"]}", 413, "measurements"),
    (b'{"measurements": [' + b'"' + b"x" * (9 * 1024 * 1024) + b'"]}', 413, "body"),
    (b'{"measurements": [{"measurement_uid": ["x"]}]}', 400, "measurements[0].measurement_uid"),
]


@pytest.mark.parametrize(("raw", "status", "field"), HOSTILE_BODIES)
def test_hostile_bodies_get_4xx_and_the_collector_keeps_serving(
    collector: CollectorProcess, raw: bytes, status: int, field: str
) -> None:
    token = register_probe(collector, f"kz-hostile-{len(raw) % 100000}-{status}")
    got_status, body = http_json("POST", f"{collector.url}/api/v1/measurements", raw=raw, token=token)
    assert (got_status, body["field"]) == (status, field)
    assert http_json("GET", f"{collector.url}/api/v1/health")[0] == 200


def test_sql_looking_strings_are_stored_as_text(collector: CollectorProcess) -> None:
    token = register_probe(collector, "kz-sql", network_name="Robert'); DROP TABLE probes;--")
    nasty = sample_measurement(30, vantage_id="kz-sql",
                               url="https://example.org/?q=';DROP TABLE measurements;--")
    nasty["probe_network_name"] = "Robert'); DROP TABLE probes;--"
    assert submit(collector, token, [nasty])[0] == 200
    rows = database_rows(collector, "SELECT url, probe_network_name FROM measurements "
                                    "WHERE vantage_id = 'kz-sql'")
    assert rows == [(nasty["input"], nasty["probe_network_name"])]
    assert database_rows(collector, "SELECT COUNT(*) FROM probes WHERE probe_id = 'kz-sql'") == [(1,)]


def test_wrong_method_and_path_are_json_errors(collector: CollectorProcess) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", collector.port, timeout=10)
    connection.request("GET", "/api/v1/measurements")
    response = connection.getresponse()
    assert response.status == 405 and json.loads(response.read())["error"].startswith("Method")
    connection.request("GET", "/api/v2/health")
    response = connection.getresponse()
    assert response.status == 404 and "field" in json.loads(response.read())


def test_uploads_drive_the_state_machine_without_alerts(collector: CollectorProcess) -> None:
    # The dashboard, reports and alerts read target_state: uploads must feed it on any collector.
    token = register_probe(collector, "kz-states")
    start = datetime.now(UTC) - timedelta(minutes=10)
    batch = [sample_measurement(100 + n, vantage_id="kz-states",
                                started=start + timedelta(minutes=n)) for n in range(3)]
    assert submit(collector, token, batch)[0] == 200
    state = database_rows(collector, "SELECT state, method FROM target_state "
                                     "WHERE vantage_id = 'kz-states'")
    assert state == [("blocked", "dns.nxdomain")]
    transitions = database_rows(collector, "SELECT to_state FROM state_transitions "
                                           "WHERE vantage_id = 'kz-states' ORDER BY id")
    assert [row[0] for row in transitions] == ["anomaly", "blocked"]
    assert submit(collector, token, batch)[1] == {"received": 3, "stored": 0, "duplicates": 3}
    assert len(database_rows(collector, "SELECT id FROM state_transitions "
                                        "WHERE vantage_id = 'kz-states'")) == 2
