"""Whether a round's measurements can be judged (pure): control answers, controls, storage."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Fewer measurements than this share with a control answer make the round unjudgeable: the
# verdicts of the rest are guesses ("unknown") and the round would read as normal.
CONTROLLED_SHARE = 0.5

# The collector re-dates a skewed probe's uploads (docs/collector-api.md, "probe clocks"), but
# local states, reports and alert times follow the probe's clock: further off than this from the
# control helper's `Date` header (itself only to the second) and a round's times mislead.
CLOCK_SKEW_LIMIT_SECONDS = 120.0


@dataclass(slots=True)
class RoundEvidence:
    """What a round saw that says whether its verdicts mean anything."""

    helper_configured: bool = True
    measured: int = 0
    without_control: int = 0
    control_failures: Counter[str] = field(default_factory=Counter)
    controls_measured: int = 0
    controls_unreachable: Counter[str] = field(default_factory=Counter)
    not_stored: int = 0
    store_error: str | None = None
    clock_skew_seconds: float | None = None  # probe ahead of the helper (median of the round)

    def add(self, measurement: Mapping[str, Any], *, is_control_target: bool) -> None:
        """Counts one measurement as it came from the engine (before it is stored)."""
        test_keys = measurement.get("test_keys") or {}
        self.measured += 1
        failure = test_keys.get("control_failure")
        if failure is not None or not test_keys.get("control"):
            self.without_control += 1
            if failure is not None:
                self.control_failures[str(failure)] += 1
        if is_control_target:
            self.controls_measured += 1
            probe_failure = (test_keys.get("dns_experiment_failure")
                             or test_keys.get("http_experiment_failure"))
            if probe_failure or test_keys.get("accessible") is False:
                self.controls_unreachable[str(probe_failure or "not accessible")] += 1

    def add_not_stored(self, error: str) -> None:
        self.not_stored += 1
        self.store_error = self.store_error or error


def _most_common(counter: Counter[str]) -> str:
    return ", ".join(f"{name} x{count}" for name, count in counter.most_common(3))


def degraded_reason(evidence: RoundEvidence) -> str | None:
    """One line saying why the round cannot be judged, or None when it can."""
    reasons = []
    if evidence.not_stored:
        reasons.append(f"{evidence.not_stored} of {evidence.measured} measurements not stored "
                       f"({evidence.store_error})")
    if evidence.measured and evidence.without_control > evidence.measured * CONTROLLED_SHARE:
        if not evidence.helper_configured:
            reasons.append("no control helper: [probe] helper_url is not set, every verdict "
                           "is a guess (run `blockmon doctor`)")
        else:
            detail = _most_common(evidence.control_failures) or "no control in the answer"
            reasons.append(f"control helper failing: {evidence.without_control} of "
                           f"{evidence.measured} measurements without a control ({detail})")
    unreachable = sum(evidence.controls_unreachable.values())
    if evidence.controls_measured and unreachable == evidence.controls_measured:
        reasons.append(f"all {evidence.controls_measured} control target measurements failed "
                       f"({_most_common(evidence.controls_unreachable)}): this vantage's "
                       "network or resolver is not working")
    skew = evidence.clock_skew_seconds
    if skew is not None and abs(skew) > CLOCK_SKEW_LIMIT_SECONDS:
        reasons.append(f"clock {abs(skew):.0f} s {'ahead of' if skew > 0 else 'behind'} the "
                       f"control helper's (more than {CLOCK_SKEW_LIMIT_SECONDS:.0f} s): "
                       "measurement times are wrong; set the clock (NTP)")
    return "; ".join(reasons) or None
