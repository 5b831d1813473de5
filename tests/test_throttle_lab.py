"""Throttling through real shaped traffic (tc htb on lo, lab/shaping.py), and its look-alikes."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from collections.abc import Iterator

import pytest

from lab import LabInfo, send_vantage_shaping
from probes.analysis_throttle import BASELINE_FACTOR, MIN_RATE_BYTES, THROTTLE_RATIO
from probes.measure import measure_url
from probes.options import ProbeOptions
from tests.test_measure_lab import BLOCKMON, PROJECT_ROOT, censored_vantage

# A short budget keeps each rate fetch near a second at the lab's 100 kB/s.
RATE_BUDGET = {"throughput_seconds": 1.2}
SHAPED_TLS_TIMEOUT = 5.0


@pytest.fixture
def shaping(lab_info: LabInfo) -> None:
    if "throttle" in lab_info.unavailable_policies:
        pytest.skip(lab_info.unavailable_policies["throttle"])


@pytest.fixture
def slow_vantage(lab_info: LabInfo, shaping: None) -> Iterator[None]:
    assert lab_info.control_url is not None
    send_vantage_shaping(lab_info.control_url, True)
    try:
        yield
    finally:
        send_vantage_shaping(lab_info.control_url, False)


def _options(lab_info: LabInfo, helper_url: str, scheme: str) -> ProbeOptions:
    options = censored_vantage(lab_info, helper_url)
    # The shaped link drops packets: one TCP retransmission (1 s at first) must not turn the
    # baselines' handshakes into timeouts on a loaded machine, as FAST's 1.5 s did.
    return dataclasses.replace(options, throughput_baselines=(f"{scheme}://ok.lab.test/large",),
                               tls_timeout=SHAPED_TLS_TIMEOUT, **RATE_BUDGET)


async def _measure(lab_info: LabInfo, helper_url: str, scheme: str, host: str, large: bool = True) -> dict:
    url = f"{scheme}://{host}/"
    return await measure_url(
        url, _options(lab_info, helper_url, scheme), throughput_url=f"{url}large" if large else None
    )


def _verdict(measurement: dict) -> tuple:
    keys = measurement["test_keys"]
    return keys["blocking"], keys["accessible"], keys["blocking_method"]


@pytest.mark.parametrize(("scheme", "method"), [("https", "tls.throttled"), ("http", "http.throttled")])
async def test_a_throttled_target_is_named_with_its_rates(lab_info, helper_url, shaping, scheme, method):
    measurement = await _measure(lab_info, helper_url, scheme, "throttle.lab.test")
    keys = measurement["test_keys"]
    assert _verdict(measurement) == ("http-failure", False, method), keys["x_analysis_notes"]
    throughput = keys["x_throughput"]
    probe, control = throughput["probe"]["rate"], throughput["control"]["rate"]
    # The lab shapes to 800 kbit/s (100 kB/s); loopback runs a thousand times faster.
    assert 50_000 < probe < 200_000, (throughput["probe"]["sample_seconds"], throughput["probe"]["sample_bytes"])
    assert probe <= THROTTLE_RATIO * control
    assert throughput["probe"]["rate_bytes"] >= MIN_RATE_BYTES
    assert isinstance(throughput["probe"]["sample_bytes"][-1], int)
    fast = [b for b in throughput["baseline"] if b["profile"] and b["profile"]["rate"] >= BASELINE_FACTOR * probe]
    kinds = {b["kind"] for b in fast}
    assert kinds == ({"neutral_sni", "url"} if scheme == "https" else {"url"}), throughput["baseline"]
    assert any(note.startswith("throughput: probe") for note in keys["x_analysis_notes"])


async def test_a_slow_network_everywhere_is_not_throttling(lab_info, helper_url, slow_vantage):
    measurement = await _measure(lab_info, helper_url, "https", "throttle.lab.test")
    keys = measurement["test_keys"]
    assert _verdict(measurement) == (False, True, None), keys["x_analysis_notes"]
    baselines = [b["profile"]["rate"] for b in keys["x_throughput"]["baseline"]]
    # Measured, and slow too: the baseline is what tells the network from a censor.
    assert baselines and max(baselines) < BASELINE_FACTOR * keys["x_throughput"]["probe"]["rate"]
    assert any("baseline is slow too" in note for note in keys["x_analysis_notes"])


async def test_a_slow_site_everywhere_is_not_throttling(lab_info, helper_url, shaping):
    measurement = await _measure(lab_info, helper_url, "https", "slow.lab.test")
    keys = measurement["test_keys"]
    assert _verdict(measurement) == (False, True, None), keys["x_analysis_notes"]
    throughput = keys["x_throughput"]
    assert throughput["probe"]["rate"] > THROTTLE_RATIO * throughput["control"]["rate"]
    assert throughput["baseline"] == []  # not even a candidate


async def test_a_slow_control_is_not_throttling(lab_info, helper_url, shaping):
    measurement = await _measure(lab_info, helper_url, "https", "slow-control.lab.test")
    keys = measurement["test_keys"]
    assert _verdict(measurement) == (False, True, None), keys["x_analysis_notes"]
    throughput = keys["x_throughput"]
    assert throughput["control"]["rate"] < 200_000 < throughput["probe"]["rate"]


async def test_a_small_page_is_not_throttling_even_when_shaped(lab_info, helper_url, shaping):
    measurement = await _measure(lab_info, helper_url, "https", "throttle.lab.test", large=False)
    keys = measurement["test_keys"]
    assert _verdict(measurement) == (False, True, None), keys["x_analysis_notes"]
    assert keys["x_throughput"]["probe"]["bytes"] < MIN_RATE_BYTES
    assert keys["x_throughput"]["baseline"] == []


async def test_a_throttled_page_that_times_out_is_throttled_not_a_timeout(lab_info, helper_url, shaping):
    # The large page itself as the URL: 256 kB at 100 kB/s cannot finish within http_timeout (2 s).
    measurement = await measure_url("https://throttle.lab.test/large", _options(lab_info, helper_url, "https"))
    keys = measurement["test_keys"]
    assert keys["requests"][0]["failure"] == "generic_timeout_error"
    assert _verdict(measurement) == ("http-failure", False, "tls.throttled"), keys["x_analysis_notes"]
    assert keys["x_throughput"]["probe"]["ended_by"] == "failure"


def test_blockmon_measure_names_the_throttled_site_with_its_rates(lab_info, helper_url, shaping, tmp_path):
    info_file = tmp_path / "lab.json"
    info_file.write_text(lab_info.to_json())
    completed = subprocess.run(
        [BLOCKMON, "measure", "--lab", str(info_file), "--helper", helper_url, "--probe-cc", "KZ",
         "--throughput-url", "https://throttle.lab.test/large", "--baseline-url", "https://ok.lab.test/large",
         "https://throttle.lab.test/"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    (measurement,) = [json.loads(line) for line in completed.stdout.splitlines()]
    keys = measurement["test_keys"]
    assert (keys["blocking"], keys["accessible"], keys["blocking_method"]) == ("http-failure", False, "tls.throttled")
    throughput = keys["x_throughput"]
    assert throughput["url"] == "https://throttle.lab.test/large"
    assert isinstance(throughput["probe"]["rate"], float) and isinstance(throughput["control"]["rate"], float)
    assert throughput["probe"]["rate"] < THROTTLE_RATIO * throughput["control"]["rate"]
    assert "method=tls.throttled" in completed.stderr


def test_blockmon_measure_refuses_a_throughput_url_for_many_urls(tmp_path):
    completed = subprocess.run(
        [BLOCKMON, "measure", "--throughput-url", "https://a.example/large", "https://a.example/", "https://b.example/"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode == 2
    assert "--throughput-url" in completed.stderr and "exactly one URL" in completed.stderr
