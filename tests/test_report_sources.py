"""A finding's explanation names OONI's networks by ASN and name, beside blockmon's own probes."""

from __future__ import annotations

from reports.model import MethodFinding, UrlEvidence, Vantage, VantageFinding
from reports.sources import claim_explanation, ooni_network

URL = "http://fergananews.com/"


def _url(verdict: str, method: str | None = None) -> UrlEvidence:
    methods = () if method is None else (MethodFinding(
        method=method, family=method.split(".")[0], description=f"{method} description",
        measurements=1, tls_issuer=None, fingerprint=None, first_seen_at="2024-01-02T00:00:00Z",
        last_seen_at="2024-01-02T00:00:00Z", evidence_uid="u1"),)
    blocked = verdict == "still blocked"
    return UrlEvidence(
        url=URL, role="former", state="blocked" if blocked else "accessible", state_since=None,
        verdict=verdict, measurements=3, anomalies=3 if blocked else 0, blocked=3 if blocked else 0,
        accessible=0 if blocked else 3, down=0, unknown=0, anomaly_share=1.0 if blocked else 0.0,
        first_blocked_at=None, last_blocked_at=None, methods=methods, evidence_uids=())


def _finding(vantage_id: str, asn: str, name: str | None, verdict: str,
             method: str | None = None) -> VantageFinding:
    vantage = Vantage(vantage_id, "KZ", asn, name)
    return VantageFinding(vantage, verdict, f"{URL} {verdict} on {vantage.label}.",
                          (_url(verdict, method),))


def test_ooni_networks_are_named_by_asn_and_network_name_in_one_sentence():
    findings = [
        _finding("kz-almaty-1", "AS9198", "Kazakhtelecom", "never seen blocked"),
        _finding("ooni:KZ:AS9198", "AS9198", "Kazakhtelecom", "still blocked", "dns.nxdomain"),
        _finding("ooni:KZ:AS21299", "AS21299", "Kar-Tel", "still blocked", "dns.nxdomain"),
        _finding("ooni:KZ:AS48716", "AS48716", None, "never seen blocked"),
    ]
    assert claim_explanation(findings) == (
        f"{URL} never seen blocked on kz-almaty-1 (KZ, AS9198 Kazakhtelecom). "
        f"{URL} blocked per OONI measurements in AS9198 (Kazakhtelecom) and AS21299 (Kar-Tel) "
        "by dns.nxdomain description.")


def test_own_vantages_alone_read_as_before_and_ooni_alone_names_only_networks():
    own = [_finding("kz-almaty-1", "AS9198", "Kazakhtelecom", "still blocked"),
           _finding("kz-astana-1", "AS21299", "Kar-Tel", "never seen blocked")]
    assert claim_explanation(own) == own[0].explanation
    ooni = [_finding("ooni:KZ:AS9198", "AS9198", "Kazakhtelecom", "never seen blocked"),
            _finding("ooni:KZ:AS48716", "AS48716", None, "never seen blocked")]
    text = claim_explanation(ooni)
    assert text == "No blocking seen in OONI measurements in AS9198 (Kazakhtelecom) and AS48716."
    assert "ooni:" not in text
    assert ooni_network(Vantage("ooni:KZ:AS9198", "KZ", None, None)) == "AS?"
