"""E-mail alerts through a real SMTP server on loopback: STARTTLS, login, message content."""

from __future__ import annotations

import email
from email import policy
from typing import Any

import pytest

from monitor.alerts.channels.base import TransportError
from monitor.alerts.channels.email import EmailChannel
from monitor.alerts.messages import build_digest
from tests.fixtures.alerts import SmtpServer

PAYLOAD = {
    "schema": "blockmon.alert/1", "kind": "block_confirmed", "alert_id": 42,
    "at": "2026-11-25T18:10:00Z",
    "summary": "Azattyq is blocked at kz-1 (AS9198) by dns.nxdomain since 2026-11-25T18:10:00Z",
    "incident": {"id": 3, "status": "open", "opened_at": "2026-11-25T18:10:00Z"},
    "target": {"id": "azattyq", "name": "Azattyq",
               "briefing": {"section": "Internet censorship", "quote": "Azattyq was blocked"}},
    "where": [{"vantage_id": "kz-1", "probe_asn": "AS9198", "url": "https://www.azattyq.org/",
               "method": "dns.nxdomain", "since": "2026-11-25T18:10:00Z",
               "evidence_uid": "uid-1", "evidence_url": None}],
    "previous_methods": [],
}


def channel_for(server: SmtpServer, **overrides: Any) -> EmailChannel:
    options: dict[str, Any] = dict(host=server.host, port=server.port, sender="blockmon@lab.test",
                                   recipients=["ops@lab.test", "desk@lab.test"], starttls=True,
                                   username="alerts", password="secret", timeout=10,
                                   ca_file=server.ca_file)
    options.update(overrides)
    return EmailChannel(**options)


async def test_an_alert_arrives_by_email_over_starttls_with_login(
        smtp_server: SmtpServer) -> None:
    await channel_for(smtp_server).send(PAYLOAD, delivery_id=1)
    [envelope] = smtp_server.messages
    assert smtp_server.logins == [("alerts", "secret")]
    assert envelope.mail_from == "blockmon@lab.test"
    assert envelope.rcpt_tos == ["ops@lab.test", "desk@lab.test"]
    message = email.message_from_bytes(envelope.content, policy=policy.default)
    assert message["Subject"] == f"[blockmon] {PAYLOAD['summary']}"
    assert message["X-Blockmon-Alert-Id"] == "42"
    body = message.get_content()
    assert "kz-1 (AS9198) https://www.azattyq.org/ dns.nxdomain" in body
    assert 'Briefing, Internet censorship: "Azattyq was blocked"' in body


async def test_a_digest_is_one_message(smtp_server: SmtpServer) -> None:
    second = {**PAYLOAD, "alert_id": 43, "summary": "Kloop is blocked"}
    await channel_for(smtp_server).send_digest(build_digest([PAYLOAD, second]),
                                               delivery_id=2)
    [envelope] = smtp_server.messages
    text = email.message_from_bytes(envelope.content, policy=policy.default).get_content()
    assert "[42] Azattyq is blocked" in text and "[43] Kloop is blocked" in text


async def test_a_wrong_password_is_a_permanent_failure(smtp_server: SmtpServer) -> None:
    with pytest.raises(TransportError) as raised:
        await channel_for(smtp_server, password="wrong").send(PAYLOAD, delivery_id=1)
    assert raised.value.permanent and "login refused" in raised.value.message
    assert smtp_server.messages == []


async def test_an_untrusted_certificate_is_a_retryable_failure(
        smtp_server: SmtpServer) -> None:
    with pytest.raises(TransportError) as raised:
        await channel_for(smtp_server, ca_file=None).send(PAYLOAD, delivery_id=1)
    assert not raised.value.permanent
    assert smtp_server.messages == []


async def test_no_server_is_a_retryable_failure(smtp_server: SmtpServer) -> None:
    with pytest.raises(TransportError) as raised:
        await channel_for(smtp_server, port=1).send(PAYLOAD, delivery_id=1)
    assert not raised.value.permanent


async def test_a_line_break_in_a_target_name_stays_out_of_the_headers(
        smtp_server: SmtpServer) -> None:
    # Target names come from registries and collectors' probes: a CR/LF in one must neither
    # add a header (Bcc: ...) nor make every later send of this alert fail.
    summary = "Evil\r\nBcc: spy@lab.test\nX-Other: 1 is blocked at kz-1 (AS9198)"
    await channel_for(smtp_server).send({**PAYLOAD, "summary": summary}, delivery_id=3)
    [envelope] = smtp_server.messages
    assert envelope.rcpt_tos == ["ops@lab.test", "desk@lab.test"]
    message = email.message_from_bytes(envelope.content, policy=policy.default)
    assert message["Bcc"] is None and message["X-Other"] is None
    assert message["Subject"].strip() == ("[blockmon] Evil Bcc: spy@lab.test X-Other: 1 is "
                                          "blocked at kz-1 (AS9198)")
