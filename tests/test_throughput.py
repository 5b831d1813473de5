"""Throughput profiles, the throttling rules and the registry's rate URLs, without the network."""

from __future__ import annotations

from probes.analysis_throttle import MIN_RATE_BYTES, judge_throttling, measurable_rate
from probes.options import ProbeOptions
from probes.throughput import build_profile, sample_points
from probes.throughput_probe import rate_arguments, with_vantage_baselines
from targets.registry import check_registry_text
from targets.storage import render_target_list

REGISTRY = """
[list]
name = "t"
[[target]]
id = "azattyq"
name = "Azattyq"
category_code = "NEWS"
notes = "throttled by SNI since 2022"
throughput_url = "https://www.azattyq.org/large.jpg"
baseline_url = "https://neutral.example/large.jpg"
[[target.url]]
url = "https://www.azattyq.org/"
role = "home"
[[target]]
id = "ctrl"
name = "Control"
category_code = "CTRL"
control = true
throughput_url = "https://control.example/large"
[[target.url]]
url = "https://control.example/"
role = "home"
"""


def test_registry_rate_urls_load_round_trip_and_become_measure_arguments() -> None:
    targets, problems = check_registry_text(REGISTRY, "t.toml")
    assert problems == []
    azattyq = targets.targets[0]
    assert azattyq.throughput_url == "https://www.azattyq.org/large.jpg"
    assert targets.throughput_baselines() == ("https://control.example/large",)
    again, problems = check_registry_text(render_target_list(targets), "again.toml")
    assert problems == [] and again.targets[0].baseline_url == "https://neutral.example/large.jpg"
    options = with_vantage_baselines(ProbeOptions(), [targets])
    assert rate_arguments(azattyq, options, "https://azattyq.github.io/")["throughput_url"] is None
    assert rate_arguments(azattyq, options, "https://rus.azattyq.org/") == {
        "throughput_url": "https://www.azattyq.org/large.jpg",
        "baseline_urls": ("https://neutral.example/large.jpg", "https://control.example/large"),
    }


def test_a_bad_throughput_url_is_one_problem_naming_key_and_line() -> None:
    text = REGISTRY.replace('"https://www.azattyq.org/large.jpg"', '"ftp://x/large"')
    _, problems = check_registry_text(text, "t.toml")
    assert len(problems) == 1 and "throughput_url" in str(problems[0]) and "t.toml:9:" in str(problems[0])


def test_profile_rate_counts_the_silence_before_a_cut_but_not_the_first_block() -> None:
    points = [(0.1, 16_000), (0.5, 80_000), (0.6, 116_000)]
    finished = build_profile(points, 0.6, "eof")
    assert finished["rate"] == round(100_000 / 0.5, 1) and finished["rate_bytes"] == 100_000
    cut = build_profile(points, 1.1, "seconds")
    assert cut["rate"] == 100_000.0 and cut["time_to_first_byte"] == 0.1
    assert len(sample_points([(t / 10, t) for t in range(100)])) == 8


def _rated(rate: float, rate_bytes: int = MIN_RATE_BYTES, ended_by: str = "eof") -> dict:
    return {"rate": rate, "rate_bytes": rate_bytes, "ended_by": ended_by, "time_to_first_byte": 0.1, "seconds": 3.0}


def test_throttling_needs_a_far_slower_probe_and_a_fast_baseline() -> None:
    slow, fast = _rated(10_000.0), _rated(1_000_000.0)
    assert judge_throttling({"probe": slow, "control": fast, "baseline": [{"kind": "url", "profile": fast}]}).step == "http"
    assert judge_throttling({"probe": slow, "control": fast, "baseline": [{"kind": "neutral_sni", "profile": fast}]}).step == "tls"
    assert not judge_throttling({"probe": slow, "control": fast, "baseline": [{"kind": "url", "profile": slow}]}).throttled
    assert not judge_throttling({"probe": slow, "control": fast, "baseline": []}).throttled
    assert not judge_throttling({"probe": slow, "control": _rated(30_000.0), "baseline": [{"kind": "url", "profile": fast}]}).throttled


def test_a_rate_rests_on_enough_bytes_or_on_a_long_cut_read() -> None:
    assert measurable_rate(_rated(5_000.0, rate_bytes=1_000)) is None
    assert measurable_rate(_rated(5_000.0, rate_bytes=1_000, ended_by="failure")) == 5_000.0
    assert measurable_rate({**_rated(5_000.0, 1_000, "failure"), "seconds": 0.5}) is None
