"""Pure alert logic: vantage health, confirmed blocks, silence, and the incident lifecycle."""

from __future__ import annotations

from datetime import UTC, datetime

from monitor.alerts.incidents import (
    Affected,
    reconcile,
    wanted_blocks,
    wanted_outages,
    wanted_silences,
)
from monitor.alerts.messages import build_payload, render_text
from monitor.alerts.rules import (
    ProbeActivity,
    RuleConfig,
    UrlStatus,
    assess_vantage,
    assess_vantages,
    confirmed_blocks,
    detect_silent_probes,
)

CONTROLS = frozenset({"control-example"})


def status(url: str, state: str, *, vantage: str = "kz-1", target: str | None = None,
           method: str | None = None, since: str = "2026-11-25T18:00:00Z",
           control_failed: bool = False, asn: str = "AS9198") -> UrlStatus:
    target_id = target or url.split("//")[1].split(".")[0]
    return UrlStatus(vantage_id=vantage, url=url, target_id=target_id, state=state,
                     method=method, since=since, last_uid=f"uid-{vantage}-{target_id}",
                     probe_asn=asn, is_control=target_id in CONTROLS,
                     control_failed=control_failed)


def test_a_vantage_where_most_urls_and_the_controls_fail_is_in_outage() -> None:
    rows = [status("https://azattyq.org/", "blocked", method="dns.nxdomain"),
            status("https://respublika.kz/", "anomaly", method="tcp.timeout"),
            status("https://kloop.kg/", "down"),
            status("https://control-example.org/", "down", target="control-example"),
            status("https://eurasianet.org/", "accessible")]
    health = assess_vantage(rows, RuleConfig(outage_fraction=0.6, outage_min_urls=3))
    assert (health.failing_urls, health.measured_urls) == (4, 5)
    assert health.outage and not health.trusted
    assert health.evidence_uid is not None


def test_many_blocks_with_the_control_reachable_are_not_an_outage() -> None:
    rows = [status(f"https://site{n}.kz/", "blocked", method="dns.nxdomain") for n in range(5)]
    rows.append(status("https://control-example.org/", "accessible", target="control-example"))
    health = assess_vantages(rows, RuleConfig())["kz-1"]
    assert not health.outage and health.trusted
    assert len(confirmed_blocks(rows, {"kz-1": health})) == 5


def test_unknown_counts_as_failing_only_when_the_control_helper_was_unreachable() -> None:
    no_helper = [status(f"https://s{n}.kz/", "unknown") for n in range(4)]
    assert not assess_vantage(no_helper, RuleConfig()).outage
    cut_off = [status(f"https://s{n}.kz/", "unknown", control_failed=True) for n in range(4)]
    assert assess_vantage(cut_off, RuleConfig()).outage


def test_blocks_at_a_vantage_whose_controls_fail_are_not_confirmed() -> None:
    rows = [status("https://azattyq.org/", "blocked", method="dns.nxdomain"),
            status("https://control-example.org/", "down", target="control-example")]
    health = assess_vantages(rows, RuleConfig(outage_min_urls=10))
    assert not health["kz-1"].outage and not health["kz-1"].controls_reachable
    assert confirmed_blocks(rows, health) == []


def test_silent_probes_are_those_not_heard_from_for_two_intervals() -> None:
    now = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
    probes = [ProbeActivity("kz-1", "AS9198", "2026-11-25T18:30:00Z", "2026-11-25T18:40:00Z"),
              ProbeActivity("kz-2", "AS48503", "2026-11-25T19:10:00Z", None),
              ProbeActivity("kz-3", "AS21299", None, None)]
    silent = detect_silent_probes(probes, interval_seconds=1800, config=RuleConfig(), now=now)
    assert [probe.vantage_id for probe in silent] == ["kz-1"]


def block(vantage: str, method: str, since: str, asn: str = "AS9198",
          url: str = "https://azattyq.org/") -> UrlStatus:
    return status(url, "blocked", vantage=vantage, target="azattyq", method=method,
                  since=since, asn=asn)


def test_incident_opens_escalates_changes_method_and_closes() -> None:
    now = "2026-11-25T18:10:00Z"
    # One vantage confirms: one incident, one block_confirmed alert.
    first = reconcile("block", [], wanted_blocks([block("kz-1", "dns.nxdomain",
                                                        "2026-11-25T18:00:00Z")]), now=now)
    assert len(first) == 1 and [e.kind for e in first[0].events] == ["block_confirmed"]
    incident = first[0].incident
    assert incident.opened_at == "2026-11-25T18:00:00Z" and incident.asns == ("AS9198",)
    incident = incident.__class__(**{**_fields(incident), "id": 7})

    # A second network joins, by another method: escalated, one alert.
    both = [block("kz-1", "dns.nxdomain", "2026-11-25T18:00:00Z"),
            block("kz-2", "tls.reset", "2026-11-25T18:20:00Z", asn="AS48503")]
    second = reconcile("block", [incident], wanted_blocks(both), now="2026-11-25T18:25:00Z")
    assert [e.kind for e in second[0].events] == ["block_escalated"]
    assert second[0].events[0].affected[0].vantage_id == "kz-2"
    incident = second[0].incident
    assert incident.vantages == ("kz-1", "kz-2") and incident.asns == ("AS48503", "AS9198")
    assert incident.methods == ("dns.nxdomain", "tls.reset")

    # kz-1 moves from DNS to TLS interception: method_changed, saying what it was.
    moved = [block("kz-1", "tls.mitm", "2026-11-25T18:00:00Z"), both[1]]
    third = reconcile("block", [incident], wanted_blocks(moved), now="2026-11-25T18:40:00Z")
    event = third[0].events[0]
    assert (event.kind, event.vantage_id, event.previous_methods) == (
        "method_changed", "kz-1", ("dns.nxdomain",))
    incident = third[0].incident
    # A change within one family (dns.nxdomain -> dns.timeout) is no news.
    same_family = reconcile("block", [incident], wanted_blocks(
        [block("kz-1", "tls.reset", "2026-11-25T18:00:00Z"), both[1]]), now=now)
    assert same_family[0].events == ()

    # kz-2 lifts: partial lift, incident stays open; then kz-1 lifts: closed.
    fourth = reconcile("block", [incident], wanted_blocks([moved[0]]), now="2026-11-25T19:00:00Z",
                       lifted_at={("kz-2", "https://azattyq.org/"): "2026-11-25T18:55:00Z"})
    assert [(e.kind, e.vantage_id, e.at) for e in fourth[0].events] == [
        ("block_lifted", "kz-2", "2026-11-25T18:55:00Z")]
    assert fourth[0].incident.status == "open"
    fifth = reconcile("block", [fourth[0].incident], {}, now="2026-11-25T19:30:00Z")
    assert fifth[0].incident.status == "closed"
    assert fifth[0].incident.closed_at == "2026-11-25T19:30:00Z"
    assert [e.kind for e in fifth[0].events] == ["block_lifted"]
    # History of networks and methods survives the close.
    assert fifth[0].incident.asns == ("AS48503", "AS9198")


def test_a_frozen_vantage_neither_lifts_nor_opens() -> None:
    opened = reconcile("block", [], wanted_blocks([block("kz-1", "dns.nxdomain",
                                                         "2026-11-25T18:00:00Z")]),
                       now="2026-11-25T18:10:00Z")[0].incident
    # kz-1 is in an outage: its states no longer show the block, but nothing is lifted.
    assert reconcile("block", [opened], {}, now="2026-11-25T19:00:00Z",
                     frozen_vantages=frozenset({"kz-1"})) == []
    # ... and a new block seen only at a frozen vantage opens nothing.
    assert reconcile("block", [], wanted_blocks([block("kz-1", "dns.nxdomain", "x")]),
                     now="y", frozen_vantages=frozenset({"kz-1"})) == []


def test_same_state_twice_changes_nothing() -> None:
    wanted = wanted_blocks([block("kz-1", "dns.nxdomain", "2026-11-25T18:00:00Z")])
    opened = reconcile("block", [], wanted, now="2026-11-25T18:10:00Z")[0].incident
    assert reconcile("block", [opened], wanted, now="2026-11-25T18:20:00Z") == []


def test_outage_and_silence_incidents_are_one_per_vantage() -> None:
    rows = [status(f"https://s{n}.kz/", "down", vantage=v) for n in range(4)
            for v in ("kz-1", "kz-2")]
    health = assess_vantages(rows, RuleConfig()).values()
    changes = reconcile("outage", [], wanted_outages(health), now="2026-11-25T18:10:00Z")
    assert [(c.incident.key, [e.kind for e in c.events]) for c in changes] == [
        ("outage:kz-1", ["outage"]), ("outage:kz-2", ["outage"])]
    silent = [ProbeActivity("kz-3", "AS1", "2026-11-25T10:00:00Z", None)]
    changes = reconcile("silence", [], wanted_silences(silent), now="2026-11-25T18:10:00Z")
    assert [e.kind for e in changes[0].events] == ["probe_silent"]
    back = reconcile("silence", [changes[0].incident], {}, now="2026-11-25T18:20:00Z")
    assert [e.kind for e in back[0].events] == ["probe_back"]


def test_the_alert_says_what_where_since_how_evidence_and_the_briefing_claim() -> None:
    change = reconcile("block", [], wanted_blocks([block("kz-1", "dns.nxdomain",
                                                         "2026-11-25T18:00:00Z")]),
                       now="2026-11-25T18:10:00Z")[0]
    target = {"name": "Azattyq", "briefing": {"section": "Internet censorship",
                                              "quote": "Azattyq was blocked", "claim": "x"}}
    payload = build_payload(change.events[0], target=target,
                            dashboard_url="https://blockmon.example.org/")
    assert payload["summary"] == ("Azattyq is blocked at kz-1 (AS9198) by dns.nxdomain "
                                  "since 2026-11-25T18:00:00Z")
    where = payload["where"][0]
    assert where["evidence_url"] == \
        "https://blockmon.example.org/measurements/uid-kz-1-azattyq"
    assert payload["target"]["briefing"]["quote"] == "Azattyq was blocked"
    text = render_text(payload)
    assert 'Briefing, Internet censorship: "Azattyq was blocked"' in text
    assert "evidence: https://blockmon.example.org/measurements/uid-kz-1-azattyq" in text


def test_dedup_keys_differ_per_change_and_repeat_for_the_same_change() -> None:
    wanted = wanted_blocks([block("kz-1", "dns.nxdomain", "2026-11-25T18:00:00Z")])
    one = reconcile("block", [], wanted, now="2026-11-25T18:10:00Z")[0].events[0]
    again = reconcile("block", [], wanted, now="2026-11-25T18:11:00Z")[0].events[0]
    assert one.dedup_key == again.dedup_key
    entry = Affected("kz-1", "AS9198", "2026-11-25T18:00:00Z", "https://azattyq.org/",
                     "tls.mitm")
    other = reconcile("block", [], {"block:azattyq": (entry,)}, now="z")[0].events[0]
    assert other.dedup_key != one.dedup_key


def _fields(incident: object) -> dict[str, object]:
    from dataclasses import fields

    return {f.name: getattr(incident, f.name) for f in fields(incident)}  # type: ignore[arg-type]


def test_an_outage_is_dated_by_its_controls_not_by_a_long_dead_site() -> None:
    rows = [status("https://gone.kz/", "down", since="2026-10-01T00:00:00Z"),
            status("https://a.kz/", "down", since="2026-11-25T18:10:00Z"),
            status("https://b.kz/", "down", since="2026-11-25T18:10:05Z"),
            status("https://control-example.org/", "down", target="control-example",
                   since="2026-11-25T18:10:02Z")]
    health = assess_vantage(rows, RuleConfig())
    assert health.outage and health.since == "2026-11-25T18:10:02Z"
    no_controls = assess_vantage(rows[:3], RuleConfig())
    assert no_controls.since == "2026-11-25T18:10:00Z"
