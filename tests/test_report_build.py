"""Every statement the November 2026 report makes about the five known histories."""

from __future__ import annotations

import pytest

from monitor.store import open_store
from reports.build import build_report, decide_url_verdict, format_share
from reports.collect import collect_inputs
from reports.model import Report, TargetFinding
from reports.periods import PeriodError, parse_period, range_period
from tests.fixtures.reports import BLOCKPAGE, MITM_ISSUER, REPORT_TARGETS, HistoryStore

PERIOD = parse_period("2026-11")


@pytest.fixture(scope="module")
def report(history_store: HistoryStore) -> Report:
    store = open_store(history_store.url, migrate=False)
    try:
        return build_report(collect_inputs(store, PERIOD, list(REPORT_TARGETS)))
    finally:
        store.close()


def finding(report: Report, target_id: str) -> TargetFinding:
    return next(item for item in report.claims if item.target_id == target_id)


def url_evidence(report: Report, target_id: str, vantage_id: str, url: str):  # type: ignore[no-untyped-def]
    item = finding(report, target_id)
    vantage = next(v for v in item.vantages if v.vantage.vantage_id == vantage_id)
    return next(u for u in vantage.urls if u.url == url)


def test_summary_counts_targets_by_verdict(report: Report) -> None:
    summary = report.summary
    assert summary.blocked_targets == ("blockednews",)
    assert summary.unblocked_targets == ("lifted",)
    assert summary.never_blocked_targets == ("openpaper",)
    # Finding 2: a site down for the control too was measured; it is "down", not unmeasurable.
    assert summary.not_measurable_targets == ("unmeasured",)
    assert summary.down_targets == ("deadsite",)
    assert (summary.targets_total, summary.targets_measured, summary.vantages) == (5, 4, 2)
    assert summary.targets_measured + len(summary.not_measurable_targets) \
        == summary.targets_total
    # 4 measured targets with 5 URLs, 2 vantages, 60 measurements each in November.
    assert summary.measurements == 5 * 2 * 60


def test_summary_says_where_and_since_when(report: Report) -> None:
    places = {place.vantage.vantage_id: place for place in report.summary.blocked_where}
    almaty, beeline = places["kz-almaty-1"], places["kz-beeline-1"]
    assert (almaty.vantage.probe_cc, almaty.vantage.probe_asn,
            almaty.vantage.probe_network_name) == ("KZ", "AS9198", "JSC Kazakhtelecom")
    assert beeline.vantage.probe_asn == "AS21299"
    assert almaty.target_ids == beeline.target_ids == ("blockednews",)
    # Almaty was blocked before the period began; Beeline's blockpage started on 3 November.
    assert almaty.since == "2026-10-30T00:00:00Z"
    assert beeline.since == "2026-11-03T00:00:00Z"


def test_changes_in_the_period(report: Report) -> None:
    assert report.summary.new_blocks == 1 and report.summary.unblocks == 1
    new_block, unblock = report.changes
    assert (new_block.kind, new_block.target_id, new_block.vantage_id, new_block.at,
            new_block.method) == ("new block", "blockednews", "kz-beeline-1",
                                  "2026-11-03T00:00:00Z", "http.blockpage")
    assert (unblock.kind, unblock.target_id, unblock.vantage_id, unblock.at,
            unblock.to_state) == ("unblock", "lifted", "kz-almaty-1", "2026-11-15T00:00:00Z",
                                  "accessible")
    assert unblock.measurement_uid and unblock.measurement_uid.startswith("20261115T000000")


def test_interception_names_the_issuer(report: Report) -> None:
    evidence = url_evidence(report, "blockednews", "kz-almaty-1", "https://blocked.example/")
    assert evidence.state == "blocked" and evidence.verdict == "still blocked"
    (method,) = evidence.methods
    assert method.method == "tls.mitm" and method.tls_issuer == MITM_ISSUER
    assert "TLS interception" in method.description and MITM_ISSUER in method.description
    assert method.measurements == 60
    assert (evidence.first_blocked_at, evidence.last_blocked_at) == (
        "2026-11-01T00:00:00Z", "2026-11-30T12:00:00Z")
    assert (evidence.anomalies, evidence.measurements) == (60, 60)
    assert format_share(evidence.anomaly_share) == "100%"


def test_blockpage_names_its_fingerprint(report: Report) -> None:
    evidence = url_evidence(report, "blockednews", "kz-beeline-1", "https://blocked.example/")
    (method,) = evidence.methods
    assert method.method == "http.blockpage"
    assert method.fingerprint is not None and method.fingerprint["id"] == BLOCKPAGE["id"]
    assert BLOCKPAGE["name"] in method.description and BLOCKPAGE["id"] in method.description
    # Blocked from 3 November: 56 of the 60 November measurements.
    assert (evidence.anomalies, evidence.measurements) == (56, 60)
    assert format_share(evidence.anomaly_share) == "93.3%"
    assert evidence.first_blocked_at == "2026-11-03T00:00:00Z"
    assert evidence.state_since == "2026-11-03T00:00:00Z"


def test_domain_lineage_tells_moved_from_blocked(report: Report) -> None:
    item = finding(report, "blockednews")
    assert item.verdict == "still blocked"
    lineage = {entry.url: entry for entry in item.lineage}
    assert lineage["https://blocked.example/"].status == "blocked"
    former = lineage["http://old-blocked.example/"]
    assert former.status == "moved" and "now down" in (former.note or "")
    assert "Domain lineage" in item.explanation


def test_lifted_block(report: Report) -> None:
    item = finding(report, "lifted")
    assert item.verdict == "no longer blocked"
    evidence = url_evidence(report, "lifted", "kz-almaty-1", "https://lifted.example/")
    assert evidence.verdict == "no longer blocked" and evidence.state == "accessible"
    assert evidence.last_blocked_at == "2026-11-14T12:00:00Z"
    assert (evidence.anomalies, evidence.measurements) == (28, 60)
    assert format_share(evidence.anomaly_share) == "46.7%"
    assert [method.method for method in evidence.methods] == ["dns.nxdomain"]
    assert "NXDOMAIN" in evidence.methods[0].description
    assert "2026-11-14T12:00:00Z" in item.explanation
    # The other vantage never saw it blocked.
    other = url_evidence(report, "lifted", "kz-beeline-1", "https://lifted.example/")
    assert other.verdict == "never seen blocked" and other.methods == ()


def test_never_blocked_down_and_unmeasured(report: Report) -> None:
    open_paper = finding(report, "openpaper")
    assert open_paper.verdict == "never seen blocked"
    assert all(url.anomalies == 0 and url.accessible == 60
               for vantage in open_paper.vantages for url in vantage.urls)
    dead = finding(report, "deadsite")
    assert dead.verdict == "not measurable"
    assert dead.lineage[0].status == "dead"
    assert "down" in dead.explanation and "control" in dead.explanation
    unmeasured = finding(report, "unmeasured")
    assert unmeasured.verdict == "not measurable" and unmeasured.vantages == ()
    assert unmeasured.explanation == "Not measured in the period."


def test_claims_carry_the_briefing_quote(report: Report) -> None:
    for target in REPORT_TARGETS:
        item = finding(report, target.id)
        assert item.claim == target.briefing


def test_findings_link_to_the_measurements_behind_them(report: Report) -> None:
    evidence = url_evidence(report, "lifted", "kz-almaty-1", "https://lifted.example/")
    assert any(uid.startswith("20261101T000000") for uid in evidence.evidence_uids)  # first
    assert any(uid.startswith("20261114T120000") for uid in evidence.evidence_uids)  # last
    assert set(evidence.evidence_uids) <= set(report.evidence_uids)
    for change in report.changes:
        assert change.measurement_uid in report.evidence_uids


def test_timelines_and_heatmap_cover_every_day(report: Report) -> None:
    lifted = finding(report, "lifted")
    almaty = next(t for t in lifted.timelines if t.vantage_id == "kz-almaty-1")
    assert len(almaty.days) == 30
    assert (almaty.days[13].day, almaty.days[13].blocked) == ("2026-11-14", 2)
    assert (almaty.days[14].day, almaty.days[14].blocked, almaty.days[14].accessible) == (
        "2026-11-15", 0, 2)
    rows = {row.target_id: row for row in report.heatmap}
    assert "unmeasured" not in rows
    assert rows["lifted"].cells[0].blocked == 2 and rows["lifted"].cells[0].measurements == 4


def test_methods_by_asn(report: Report) -> None:
    by_asn = {row.probe_asn: dict(row.counts) for row in report.methods_by_asn}
    assert by_asn == {"AS9198": {"tls.mitm": 60, "dns.nxdomain": 28},
                      "AS21299": {"http.blockpage": 56}}


def test_a_week_sees_only_its_days(history_store: HistoryStore) -> None:
    store = open_store(history_store.url, migrate=False)
    try:
        week = build_report(collect_inputs(store, parse_period("2026-W47"), list(REPORT_TARGETS)))
    finally:
        store.close()
    assert week.period.days[0] == "2026-11-16" and len(week.period.days) == 7
    # The dns block ended on 15 November: that week no longer sees it at all.
    assert finding(week, "lifted").verdict == "never seen blocked"
    assert week.changes == ()
    assert week.summary.measurements == 5 * 2 * 14


@pytest.mark.parametrize(("arguments", "expected"), [
    (dict(measurements=0, unknown=0, blocked=0, end_state="not measured",
          blocked_at_start=False), "not measurable"),
    (dict(measurements=4, unknown=4, blocked=0, end_state="unknown",
          blocked_at_start=False), "not measurable"),
    (dict(measurements=4, unknown=0, blocked=4, end_state="blocked",
          blocked_at_start=False), "still blocked"),
    (dict(measurements=4, unknown=0, blocked=0, end_state="accessible",
          blocked_at_start=True), "no longer blocked"),
    (dict(measurements=4, unknown=0, blocked=0, end_state="accessible",
          blocked_at_start=False), "never seen blocked"),
    (dict(measurements=4, unknown=0, blocked=0, end_state="down",
          blocked_at_start=False), "down"),
])
def test_url_verdict_rules(arguments: dict, expected: str) -> None:
    assert decide_url_verdict(**arguments) == expected


def test_a_share_says_all_or_none_only_when_it_is() -> None:
    # 2999 of 3000 anomalous is not "100%", and 1 of 3000 is not "0%".
    assert format_share(2999 / 3000) == "99.9%"
    assert format_share(1 / 3000) == "0.1%"
    assert (format_share(1.0), format_share(0.0), format_share(0.4)) == ("100%", "0%", "40%")


def test_periods_and_their_errors() -> None:
    assert parse_period("2026-12").end.isoformat() == "2027-01-01T00:00:00+00:00"
    assert parse_period("2026-W47").start.isoformat() == "2026-11-16T00:00:00+00:00"
    assert range_period("2026-11-02", "2026-11-03").days == ["2026-11-02", "2026-11-03"]
    with pytest.raises(PeriodError, match="2026-13"):
        parse_period("2026-13")
    with pytest.raises(PeriodError, match="before"):
        range_period("2026-11-05", "2026-11-01")
    with pytest.raises(PeriodError, match="nov"):
        parse_period("nov")
    # The ends of the calendar: the period's end would fall outside what datetime can hold.
    for text in ("9999-12", "0000-01", "9999-W52"):
        with pytest.raises(PeriodError, match=f"period '{text}': out of range"):
            parse_period(text)
    with pytest.raises(PeriodError, match="--to 9999-12-31: out of range"):
        range_period("9999-12-30", "9999-12-31")


def test_a_method_change_keeps_the_block_start(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from monitor.store.queries import ReadDatabase, load_states_at

    store = open_store(f"sqlite:///{tmp_path / 'states.db'}")
    try:
        base = {"vantage_id": "v", "url": "https://x.example/", "target_id": "x",
                "measurement_uid": None, "from_method": None}
        state_row = {"vantage_id": "v", "url": "https://x.example/", "target_id": "x",
                     "list_name": None, "state": "blocked", "method": "tls.timeout",
                     "since": "2026-11-02T00:00:00Z", "last_change": "2026-11-05T00:00:00Z",
                     "last_measured_at": "2026-11-05T00:00:00Z", "last_uid": None,
                     "probe_asn": None, "probe_cc": None, "streak": 3}
        for from_state, to_state, method, at in (
                (None, "accessible", None, "2026-11-01T00:00:00Z"),
                ("accessible", "blocked", "dns.nxdomain", "2026-11-02T00:00:00Z"),
                ("blocked", "blocked", "tls.timeout", "2026-11-05T00:00:00Z")):
            store.save_state(state_row, {**base, "from_state": from_state, "to_state": to_state,
                                         "method": method, "at": at})
        (state,) = load_states_at(ReadDatabase(store), "2026-12-01T00:00:00Z")
        assert (state.state, state.method, state.since) == (
            "blocked", "tls.timeout", "2026-11-02T00:00:00Z")
        (earlier,) = load_states_at(ReadDatabase(store), "2026-11-02T00:00:00Z")
        assert (earlier.state, earlier.since) == ("accessible", "2026-11-01T00:00:00Z")
    finally:
        store.close()


def test_one_unconfirmed_anomaly_is_not_a_lifted_block() -> None:
    # A single timeout in a month of accessible measurements never became "blocked" in the
    # monitor (no re-test agreed): the report must not list the site as "no longer blocked".
    from monitor.store.queries import DailyCounts, MeasurementOutcome, StateAt, Transition
    from reports.model import ReportInputs
    from targets.model import Target, TargetURL

    url, vantage, uid = "https://flaky.example/", "kz-1", "20261110T000000.000000Z_KZ_x_01"
    daily = DailyCounts("flaky", url, vantage, "2026-11-10", "KZ", "AS9198", None, 30, 1, 1, 29,
                        0, 0, "2026-11-10T03:00:00Z", "2026-11-10T03:00:00Z", "u0", "u0", uid,
                        "2026-11-10T23:00:00Z")
    accessible = StateAt(vantage, url, "flaky", "accessible", None, "2026-10-01T00:00:00Z", uid)

    def verdict(*transitions: Transition) -> str:
        report = build_report(ReportInputs(
            period=PERIOD, generated_at="2026-12-01T00:00:00Z",
            targets=(Target("flaky", "Flaky", "NEWS", (TargetURL(url, "home"),), None, False,
                            ""),),
            daily=(daily,), methods=(), states_at_start=(accessible,),
            states_at_end=(accessible,), transitions=transitions,
            outcomes={uid: MeasurementOutcome(uid, "2026-11-10T23:00:00Z", "false", 1, None)},
            evidence={}))
        return report.others[0].verdict

    assert verdict() == "never seen blocked"
    # A confirmed block and its lifting in the period is what "no longer blocked" means.
    assert verdict(
        Transition(1, vantage, url, "flaky", "anomaly", "blocked", "tcp.timeout",
                   "2026-11-10T03:10:00Z", "u0"),
        Transition(2, vantage, url, "flaky", "blocked", "accessible", None,
                   "2026-11-10T04:00:00Z", "u1")) == "no longer blocked"


def test_a_target_with_only_an_old_state_is_not_counted_as_measured() -> None:
    # Measured in October, silent in November: its state is known, but November's report must
    # not count it among the targets measured in the period.
    from monitor.store.queries import StateAt
    from reports.model import ReportInputs
    from targets.model import Target, TargetURL

    url = "https://old.example/"
    state = StateAt("kz-1", url, "old", "blocked", "dns.nxdomain", "2026-10-03T00:00:00Z", "u9")
    report = build_report(ReportInputs(
        period=PERIOD, generated_at="2026-12-01T00:00:00Z",
        targets=(Target("old", "Old", "NEWS", (TargetURL(url, "home"),), None, False, ""),),
        daily=(), methods=(), states_at_start=(state,), states_at_end=(state,), transitions=(),
        outcomes={}, evidence={}))
    assert report.others[0].verdict == "not measurable"
    assert (report.summary.targets_total, report.summary.targets_measured,
            report.summary.measurements, report.summary.vantages) == (1, 0, 0, 0)
