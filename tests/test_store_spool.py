"""The upload spool on every backend: pending, uploaded, parked with the collector's reason."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from monitor.cli import cli
from monitor.store import Store, open_store
from tests.fixtures.store import synthetic_measurement


def test_a_parked_upload_leaves_the_backlog_and_keeps_its_reason(store: Store) -> None:
    first, second, third = (synthetic_measurement() for _ in range(3))
    store.save_measurements([first, second, third])
    assert store.park_upload(second["measurement_uid"], "403 measurements[0].probe_asn: moved")
    assert not store.park_upload("no-such-uid", "whatever")
    pending = [row["uid"] for row in store.spool_pending(10)]
    assert second["measurement_uid"] not in pending and len(pending) == 2
    assert (store.spool_backlog(), store.spool_parked()) == (2, 1)
    [parked] = store.load_parked()
    assert parked["uid"] == second["measurement_uid"]
    assert parked["reason"] == "403 measurements[0].probe_asn: moved"
    assert parked["parked_at"]
    store.mark_uploaded(pending)
    assert (store.spool_backlog(), store.spool_parked()) == (0, 1)
    assert store.load_measurement(second["measurement_uid"]) is not None


def test_status_shows_parked_next_to_the_backlog(tmp_path: Path) -> None:
    config = tmp_path / "blockmon.toml"
    config.write_text(f'[storage]\ndata_dir = "{tmp_path}"\n'
                      '[collector]\nurl = "http://127.0.0.1:9/"\n')
    store = open_store(f"sqlite:///{tmp_path / 'blockmon.db'}", spool=True)
    measurements = [synthetic_measurement() for _ in range(3)]
    store.save_measurements(measurements)
    store.park_upload(measurements[0]["measurement_uid"], "403 measurements[0].probe_cc: moved")
    store.close()
    result = CliRunner().invoke(cli, ["--config", str(config), "status"])
    assert result.exit_code == 0, result.output
    assert ("spool: 2 measurements waiting for upload to http://127.0.0.1:9/, "
            "1 parked (refused by the collector)") in result.output
    as_json = CliRunner().invoke(cli, ["--config", str(config), "status", "--format", "json"])
    assert '"spool_parked": 1' in as_json.output
