"""Alert messages (pure): the webhook JSON of one alert, and its text for chat and e-mail."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from monitor.alerts.incidents import Affected, AlertEvent

SCHEMA = "blockmon.alert/1"

_HEADLINES = {
    "block_confirmed": "{name} is blocked",
    "block_escalated": "{name}: block spreads to more networks",
    "block_lifted": "{name}: block lifted",
    "method_changed": "{name}: blocking method changed",
    "outage": "Possible shutdown: most sites fail at {vantages}",
    "outage_ended": "Connectivity back at {vantages}",
    "probe_silent": "Probe {vantages} is silent",
    "probe_back": "Probe {vantages} reports again",
    "vantage_degraded": "Measurements at {vantages} cannot be judged (round degraded)",
    "vantage_recovered": "Measurements at {vantages} can be judged again",
    "intermittent": "{name} is blocked intermittently",
    "intermittent_ended": "{name}: intermittent blocking ended",
    "test": "blockmon test alert",
}


def evidence_url(dashboard_url: str | None, uid: str | None) -> str | None:
    if not dashboard_url or not uid:
        return None
    # The dashboard's readable measurement page (reports/dashboard/routes.py); its JSON is
    # at /api/v1/measurements/<uid>.
    return f"{dashboard_url.rstrip('/')}/measurements/{uid}"


def _where(entry: Affected, dashboard_url: str | None) -> dict[str, Any]:
    return {**entry.as_dict(), "evidence_url": evidence_url(dashboard_url, entry.evidence_uid)}


def build_payload(event: AlertEvent, *, target: Mapping[str, Any] | None,
                  dashboard_url: str | None) -> dict[str, Any]:
    """The alert as the webhook receives it (docs/alerts.md), minus `alert_id` (set on send).

    `target` is the targets row (name, briefing as a dict) or None for outages and silences.
    """
    incident = event.incident
    briefing = (target or {}).get("briefing") or None
    target_part = None
    if incident.target_id is not None:
        target_part = {
            "id": incident.target_id,
            "name": (target or {}).get("name") or incident.target_id,
            "briefing": None if not briefing else {
                "section": briefing.get("section"), "quote": briefing.get("quote"),
                "claim": briefing.get("claim"), "period": briefing.get("period")},
        }
    payload = {
        "schema": SCHEMA,
        "kind": event.kind,
        "at": event.at,
        "incident": {
            "id": incident.id, "key": incident.key, "kind": incident.kind,
            "status": incident.status, "opened_at": incident.opened_at,
            "closed_at": incident.closed_at, "vantages": list(incident.vantages),
            "asns": list(incident.asns), "methods": list(incident.methods),
        },
        "target": target_part,
        "where": [_where(entry, dashboard_url) for entry in event.affected],
        "previous_methods": list(event.previous_methods),
    }
    payload["summary"] = render_summary(payload)
    return payload


def render_summary(payload: Mapping[str, Any]) -> str:
    """One line: what, where (vantage, ASN), since when, how."""
    where: Sequence[Mapping[str, Any]] = payload.get("where") or []
    target = payload.get("target") or {}
    vantages = sorted({f"{item['vantage_id']} ({item.get('probe_asn') or 'AS?'})"
                       for item in where})
    headline = _HEADLINES.get(payload["kind"], payload["kind"]).format(
        name=target.get("name") or "?", vantages=", ".join(vantages) or "?")
    parts = [headline]
    if payload["kind"] in ("block_confirmed", "block_escalated", "method_changed",
                           "block_lifted", "intermittent", "intermittent_ended") and vantages:
        parts.append(f"at {', '.join(vantages)}")
    methods = sorted({item["method"] for item in where if item.get("method")})
    if methods and payload["kind"] != "block_lifted":
        parts.append(f"by {', '.join(methods)}")
    if payload.get("previous_methods"):
        parts.append(f"(was {', '.join(payload['previous_methods'])})")
    shares = [item["share"] for item in where if item.get("share") is not None]
    if shares and payload["kind"] == "intermittent":
        parts.append(f"in {round(100 * max(shares))}% of the latest attempts")
    rates = [item["rates"] for item in where if item.get("rates")]
    if rates and payload["kind"] != "block_lifted":
        parts.append(_rates_text(rates[0]))
    since = min((item["since"] for item in where if item.get("since")), default=None)
    if since and payload["kind"] not in ("block_lifted", "outage_ended", "probe_back"):
        parts.append(f"since {since}")
    elif payload.get("at"):
        parts.append(f"at {payload['at']}")
    return " ".join(parts)


def _rates_text(rates: Mapping[str, Any]) -> str:
    """"at 82 kbit/s (control 1.2 Gbit/s, baseline 2.1 Gbit/s)": a throttled block's figures."""
    def kbits(value: Any) -> str:
        if not isinstance(value, int | float):
            return "?"
        kilobits = value * 8 / 1000
        return f"{kilobits / 1000:.1f} Mbit/s" if kilobits >= 1000 else f"{kilobits:.0f} kbit/s"
    return (f"at {kbits(rates.get('probe'))} (control {kbits(rates.get('control'))}, "
            f"baseline {kbits(rates.get('baseline'))})")


def render_text(payload: Mapping[str, Any]) -> str:
    """Several lines for chat and e-mail: summary, places with evidence, the briefing claim."""
    lines = [str(payload["summary"])]
    for item in payload.get("where") or []:
        place = f"- {item['vantage_id']} ({item.get('probe_asn') or 'AS?'})"
        if item.get("url"):
            place += f" {item['url']}"
        if item.get("method"):
            place += f" {item['method']}"
        if item.get("since"):
            place += f" since {item['since']}"
        evidence = item.get("evidence_url") or item.get("evidence_uid")
        if evidence:
            place += f" evidence: {evidence}"
        lines.append(place)
    briefing = (payload.get("target") or {}).get("briefing")
    if briefing and briefing.get("quote"):
        lines.append(f"Briefing, {briefing.get('section')}: \"{briefing['quote']}\"")
    incident = payload.get("incident") or {}
    if incident.get("id") is not None:
        lines.append(f"Incident {incident['id']} ({incident.get('status')}), opened "
                     f"{incident.get('opened_at')}; alert {payload.get('alert_id')}")
    return "\n".join(lines)


def build_digest(payloads: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Many alerts due at once on one channel, as one message."""
    return {
        "schema": SCHEMA,
        "kind": "digest",
        "count": len(payloads),
        "alerts": list(payloads),
        "summary": f"{len(payloads)} blockmon alerts",
    }


def render_digest_text(digest: Mapping[str, Any]) -> str:
    lines = [str(digest["summary"]) + ":"]
    lines += [f"- [{item.get('alert_id')}] {item['summary']}" for item in digest["alerts"]]
    return "\n".join(lines)


def build_test_payload(channel: str, at: str) -> dict[str, Any]:
    """What `blockmon alerts test CHANNEL` sends."""
    payload: dict[str, Any] = {
        "schema": SCHEMA, "kind": "test", "at": at, "incident": None, "target": None,
        "where": [], "previous_methods": [],
        "summary": f"blockmon test alert through channel {channel} at {at}",
    }
    return payload
