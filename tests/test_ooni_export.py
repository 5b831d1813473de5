"""What blockmon exports loads with OONI's own data library (oonidata 0.3.0, its own venv)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import cli
from monitor.schema import PROBE_DATABASE
from monitor.store import open_store
from probes.measure import measure_url
from tests.test_measure_lab import FIREWALL_SCENARIOS, SCENARIOS, censored_vantage

PROJECT_ROOT = Path(__file__).resolve().parents[1]
OONI_PYTHON = PROJECT_ROOT / ".venv-oonidata" / "bin" / "python"
LOADER = Path(__file__).with_name("oonidata_load.py")
BLOCKMON = str(Path(sys.executable).parent / "blockmon")
# The df-000 envelope of a measurement, for test_keys taken from a golden scenario.
ENVELOPE = {
    "measurement_uid": "20261202000000.000000_KZ_webconnectivity_0123456789abcdef",
    "report_id": "r", "input": "https://www.azattyq.org/", "test_name": "web_connectivity",
    "test_version": "0.4.3", "software_name": "blockmon", "software_version": "0.1.0",
    "probe_cc": "KZ", "probe_asn": "AS9198", "probe_network_name": "Kazakhtelecom",
    "probe_ip": "127.0.0.1", "resolver_ip": "192.0.2.53", "resolver_asn": "AS9198",
    "resolver_network_name": "Kazakhtelecom", "measurement_start_time": "2026-12-02 00:00:00",
    "test_start_time": "2026-12-02 00:00:00", "test_runtime": 1.0, "annotations": {},
    "data_format_version": "0.2.0", "test_helpers": {}, "input_hashes": [], "options": [],
}


@pytest.fixture(scope="session")
def oonidata_python() -> Path:
    """OONI's interpreter; built by `make oonidata` (a dependency of `make test`) when missing."""
    if not OONI_PYTHON.exists():
        built = subprocess.run(["make", "-C", str(PROJECT_ROOT), "oonidata"],
                               capture_output=True, text=True, timeout=600)
        if built.returncode != 0:
            pytest.skip(f"oonidata 0.3.0 could not be installed: {built.stderr.strip()[-300:]}")
    return OONI_PYTHON


def load_with_oonidata(python: Path, measurements: list[dict], tmp_path: Path) -> list[dict]:
    path = tmp_path / "measurements.jsonl"
    path.write_text("".join(json.dumps(m) + "\n" for m in measurements), encoding="utf-8")
    finished = subprocess.run([str(python), str(LOADER), str(path)],
                              capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    return [json.loads(line) for line in finished.stdout.splitlines()]


async def test_every_lab_scenario_measurement_loads_with_oonidata(
        lab_info, helper_url, oonidata_python, tmp_path):
    options = censored_vantage(lab_info, helper_url)
    urls = [url for url, *_ in SCENARIOS]
    if os.geteuid() == 0:
        urls += [url for url, *_ in FIREWALL_SCENARIOS]
    measurements = [await measure_url(url, options) for url in urls]
    results = load_with_oonidata(oonidata_python, measurements, tmp_path)
    assert len(results) == len(urls)
    failed = {urls[r["line"] - 1]: r["error"] for r in results if r["error"]}
    assert failed == {}
    # The field that once broke every load: OONI's rcode is the reply's integer.
    rcodes = {q["rcode"] for m in measurements for q in m["test_keys"]["queries"]}
    assert rcodes <= {None, 0, 2, 3} and 0 in rcodes


def test_a_string_rcode_is_what_oonidata_refuses(oonidata_python, tmp_path):
    # The check can fail: the format error found in the issue is still caught by the loader.
    golden = json.loads((PROJECT_ROOT / "tests" / "golden" / "dns_nxdomain.json").read_text())
    good = {**ENVELOPE, "test_keys": golden["test_keys"]}
    bad = json.loads(json.dumps(good))
    bad["test_keys"]["queries"][0]["rcode"] = "NOERROR"
    results = load_with_oonidata(oonidata_python, [good, bad], tmp_path)
    assert [r["error"] is None for r in results] == [True, False]


@pytest.mark.slow
def test_every_demo_measurement_loads_with_oonidata(oonidata_python, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("the demo's lab needs root")
    data_dir = tmp_path / "demo"
    demo = subprocess.run([BLOCKMON, "demo", "--data-dir", str(data_dir), "--rounds", "2",
                           "--round-seconds", "8"], capture_output=True, text=True, timeout=240)
    assert demo.returncode == 0, demo.stderr
    export = tmp_path / "export.jsonl"
    exported = subprocess.run([BLOCKMON, "--config", str(data_dir / "blockmon.toml"), "export",
                               "--since", "2000-01-01", "--output", str(export)],
                              capture_output=True, text=True, timeout=120)
    assert exported.returncode == 0, exported.stderr
    measurements = [json.loads(line) for line in export.read_text().splitlines() if line]
    assert len(measurements) >= 20
    results = load_with_oonidata(oonidata_python, measurements, tmp_path)
    assert [r for r in results if r["error"]] == []
    assert len(results) == len(measurements)


def test_rows_stored_with_a_textual_rcode_export_as_oonidata_loads_them(oonidata_python, tmp_path):
    golden = json.loads((PROJECT_ROOT / "tests" / "golden" / "dns_nxdomain.json").read_text())
    old = {**ENVELOPE, "test_keys": golden["test_keys"]}
    old["test_keys"]["queries"][0]["rcode"] = "NXDOMAIN"  # as blockmon stored it before the fix
    old["annotations"] = {"vantage_id": "kz-almaty-1"}
    store = open_store(f"sqlite:///{tmp_path / 'bm.db'}", migration_sets=PROBE_DATABASE)
    try:
        store.save_measurement(old, target_id="azattyq")
    finally:
        store.close()
    config = tmp_path / "blockmon.toml"
    config.write_text(f'[storage]\ndatabase = "sqlite:///{tmp_path / "bm.db"}"\n')
    out = tmp_path / "export.jsonl"
    result = CliRunner().invoke(cli, ["--config", str(config), "export", "--since", "2000-01-01",
                                      "--output", str(out)])
    assert result.exit_code == 0, result.output
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert exported[0]["test_keys"]["queries"][0]["rcode"] == 3
    assert [r["error"] for r in load_with_oonidata(oonidata_python, exported, tmp_path)] == [None]
