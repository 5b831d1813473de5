"""Throttling from evidence: the probe's rate against the control's and a same-network baseline; pure.

One slow fetch is never throttling. The rules (docs/outcomes.md, "Throttling"):
- both the probe and the control counted at least MIN_RATE_BYTES after their first block, or
  read for MIN_RATE_SECONDS until a budget or a timeout cut the read (a small page that is over
  at once says nothing about a rate; a page still coming after seconds does);
- the probe's rate is at most THROTTLE_RATIO of the control's (a slow site or a slow control
  is slow for the control too);
- a baseline measured by the probe at the same time, on the same network, ran at least
  BASELINE_FACTOR times faster than the target (a slow network is slow for the baseline too).
The method is tls.throttled when the fast baseline is the target's own address reached with a
neutral SNI (the shaping is keyed on the server name, as in Kazakhstan since 2022), else
http.throttled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

THROTTLE_RATIO = 0.25
MIN_RATE_BYTES = 64 * 1024
MIN_RATE_SECONDS = 1.0
BASELINE_FACTOR = 4.0

ThrottleStep = Literal["tls", "http"]


@dataclass(frozen=True, slots=True)
class RateComparison:
    """The probe's and the control's rates (bytes/s) over the same URL, when both are measurable."""

    probe_rate: float
    control_rate: float

    @property
    def ratio(self) -> float:
        return self.probe_rate / self.control_rate if self.control_rate > 0 else 1.0


@dataclass(frozen=True, slots=True)
class ThrottleJudgement:
    """throttled with the step it is keyed on, or not, and why (a note for x_analysis_notes)."""

    throttled: bool
    note: str
    step: ThrottleStep | None = None
    probe_rate: float | None = None
    control_rate: float | None = None
    baseline_rate: float | None = None


def measurable_rate(profile: Mapping[str, Any] | None) -> float | None:
    """A profile's rate when it rests on MIN_RATE_BYTES, or on MIN_RATE_SECONDS of a read that was
    cut before its end; else None."""
    if not profile:
        return None
    rate = profile.get("rate")
    if not isinstance(rate, int | float) or isinstance(rate, bool):
        return None
    if int(profile.get("rate_bytes") or 0) >= MIN_RATE_BYTES:
        return float(rate)
    first_byte = profile.get("time_to_first_byte")
    seconds = profile.get("seconds")
    cut = profile.get("ended_by") in ("seconds", "bytes", "failure")
    if cut and isinstance(first_byte, int | float) and isinstance(seconds, int | float):
        return float(rate) if seconds - first_byte >= MIN_RATE_SECONDS else None
    return None


def compare_rates(throughput: Mapping[str, Any] | None) -> RateComparison | None:
    if not throughput:
        return None
    probe = measurable_rate(throughput.get("probe"))
    control = measurable_rate(throughput.get("control"))
    if probe is None or control is None:
        return None
    return RateComparison(probe, control)


def is_throttling_candidate(throughput: Mapping[str, Any] | None) -> bool:
    """The probe's rate is far below the control's: worth measuring a baseline for."""
    rates = compare_rates(throughput)
    return rates is not None and rates.ratio <= THROTTLE_RATIO


def judge_throttling(throughput: Mapping[str, Any] | None) -> ThrottleJudgement:
    """Throttled or not, from `x_throughput` (probe, control and baseline profiles)."""
    if not throughput:
        return ThrottleJudgement(False, "throughput: not measured")
    rates = compare_rates(throughput)
    if rates is None:
        return ThrottleJudgement(False, _small_note(throughput))
    figures = f"probe {_rate(rates.probe_rate)}, control {_rate(rates.control_rate)}"
    if rates.ratio > THROTTLE_RATIO:
        return ThrottleJudgement(
            False,
            f"throughput: {figures}, ratio {rates.ratio:.2f} above {THROTTLE_RATIO} (not throttled)",
            probe_rate=rates.probe_rate,
            control_rate=rates.control_rate,
        )
    baselines = _baseline_rates(throughput.get("baseline") or [])
    if not baselines:
        return ThrottleJudgement(
            False,
            f"throughput: {figures}, ratio {rates.ratio:.3f}, but no same-network baseline measured",
            probe_rate=rates.probe_rate,
            control_rate=rates.control_rate,
        )
    fast = [(rate, sni) for rate, sni in baselines if rate >= BASELINE_FACTOR * rates.probe_rate]
    best = max(rate for rate, _ in baselines)
    if not fast:
        return ThrottleJudgement(
            False,
            f"throughput: {figures}, but the same-network baseline is slow too"
            f" ({_rate(best)}): the network, not the site",
            probe_rate=rates.probe_rate,
            control_rate=rates.control_rate,
            baseline_rate=best,
        )
    step: ThrottleStep = "tls" if any(sni for _, sni in fast) else "http"
    keyed = "the same address with a neutral SNI" if step == "tls" else "a neutral URL"
    return ThrottleJudgement(
        True,
        f"throughput: {figures} (ratio {rates.ratio:.3f}); baseline {_rate(best)} over {keyed}",
        step=step,
        probe_rate=rates.probe_rate,
        control_rate=rates.control_rate,
        baseline_rate=best,
    )


def _baseline_rates(entries: Sequence[Mapping[str, Any]]) -> list[tuple[float, bool]]:
    """(rate, whether it is the target's address with a neutral SNI) of each measurable baseline."""
    rates = []
    for entry in entries:
        rate = measurable_rate(entry.get("profile"))
        if rate is not None:
            rates.append((rate, entry.get("kind") == "neutral_sni"))
    return rates


def _small_note(throughput: Mapping[str, Any]) -> str:
    probe = throughput.get("probe") or {}
    control = throughput.get("control") or {}
    return (
        f"throughput: no rate to compare (probe {int(probe.get('rate_bytes') or 0)} bytes,"
        f" control {int(control.get('rate_bytes') or 0)} bytes; {MIN_RATE_BYTES} needed)"
    )


def _rate(bytes_per_second: float) -> str:
    kilobits = bytes_per_second * 8 / 1000
    return f"{kilobits / 1000:.1f} Mbit/s" if kilobits >= 1000 else f"{kilobits:.0f} kbit/s"
