"""Pure: a finding's explanation, blockmon's own vantages first, then OONI's networks by ASN and name."""

from __future__ import annotations

from collections.abc import Sequence

from probes.ooni.vantage import is_ooni_vantage
from reports.model import VERDICT_ORDER, Vantage, VantageFinding


def ooni_network(vantage: Vantage) -> str:
    """An imported OONI network as a reader names it: 'AS9198 (Kazakhtelecom)'."""
    asn = vantage.probe_asn or "AS?"
    return f"{asn} ({vantage.probe_network_name})" if vantage.probe_network_name else asn


def _and(words: Sequence[str]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


def _strongest(findings: Sequence[VantageFinding]) -> list[VantageFinding]:
    best = min(VERDICT_ORDER.index(finding.verdict) for finding in findings)
    return [finding for finding in findings if VERDICT_ORDER.index(finding.verdict) == best]


def _ooni_sentence(findings: Sequence[VantageFinding]) -> str:
    """One sentence for the OONI networks that agree: 'X blocked per OONI measurements in …'."""
    networks = f"OONI measurements in {_and([ooni_network(f.vantage) for f in findings])}"
    verdict = findings[0].verdict
    urls = [url for finding in findings for url in finding.urls]
    if verdict == "still blocked":
        blocked = [url for url in urls if url.verdict == "still blocked"]
        methods = sorted({method.description for url in blocked for method in url.methods})
        how = f" by {'; '.join(methods)}" if methods else ""
        return f"{', '.join(dict.fromkeys(url.url for url in blocked))} blocked per {networks}{how}."
    if verdict == "no longer blocked":
        lifted = [url for url in urls if url.verdict == "no longer blocked"]
        last = max((url.last_blocked_at or "" for url in lifted), default="")
        when = f" (last seen blocked {last})" if last else ""
        return f"{', '.join(dict.fromkeys(url.url for url in lifted))} accessible again per " \
            f"{networks}{when}."
    if verdict == "never seen blocked":
        return f"No blocking seen in {networks}."
    if any(url.verdict == "down" for url in urls):
        return f"The site is down per {networks}: it fails for the control too, so blocking " \
            "cannot be told apart."
    return f"No usable measurement in {networks} in the period."


def claim_explanation(findings: Sequence[VantageFinding]) -> str:
    """What each source saw, side by side: the strongest verdict of blockmon's own vantages
    (one sentence each), then that of the imported OONI networks (one sentence for them all)."""
    own = [finding for finding in findings if not is_ooni_vantage(finding.vantage.vantage_id)]
    ooni = [finding for finding in findings if is_ooni_vantage(finding.vantage.vantage_id)]
    sentences = [finding.explanation for finding in _strongest(own)] if own else []
    if ooni:
        sentences.append(_ooni_sentence(_strongest(ooni)))
    return " ".join(sentences)
