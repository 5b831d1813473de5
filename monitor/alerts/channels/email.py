"""E-mail alerts over SMTP (aiosmtplib): STARTTLS and login when configured."""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiosmtplib

from monitor.alerts.channels.base import TransportError
from monitor.alerts.messages import render_digest_text, render_text


def build_email(subject: str, text: str, *, sender: str, recipients: Sequence[str],
                alert_id: Any = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    # A line break in a header would be refused by `email` on every retry (or, in older code,
    # start a new header): target names and vantage ids are not ours to trust.
    message["Subject"] = " ".join(subject.splitlines())
    message["Message-ID"] = make_msgid(domain="blockmon")
    if alert_id is not None:
        message["X-Blockmon-Alert-Id"] = str(alert_id)
    message.set_content(text)
    return message


class EmailChannel:
    """One message per alert (or per digest) to every recipient."""

    def __init__(self, *, host: str, port: int, sender: str, recipients: Sequence[str],
                 starttls: bool = True, username: str | None = None,
                 password: str | None = None, timeout: float = 15.0,
                 ca_file: str | None = None, name: str = "email") -> None:
        if not recipients:
            raise ValueError("[alerts] email_to: no recipients for e-mail alerts")
        self.name = name
        self.host = host
        self.port = port
        self.sender = sender
        self.recipients = tuple(recipients)
        self.starttls = starttls
        self.username = username
        self.password = password
        self.timeout = timeout
        self.ca_file = ca_file

    async def _deliver(self, message: EmailMessage) -> None:
        context = ssl.create_default_context(cafile=self.ca_file) if self.starttls else None
        try:
            await aiosmtplib.send(
                message, hostname=self.host, port=self.port, start_tls=self.starttls,
                use_tls=False, tls_context=context, username=self.username,
                password=self.password, timeout=self.timeout)
        except aiosmtplib.SMTPAuthenticationError as error:
            raise TransportError(f"{self.name}: SMTP login refused: {error.message}",
                                 permanent=True) from None
        except aiosmtplib.SMTPRecipientsRefused as error:
            raise TransportError(f"{self.name}: recipients refused: {error}",
                                 permanent=True) from None
        except (TimeoutError, aiosmtplib.SMTPException, ssl.SSLError, OSError) as error:
            raise TransportError(f"{self.name}: {type(error).__name__}: {error}") from None

    async def send(self, payload: Mapping[str, Any], *, delivery_id: int | None) -> None:
        subject = f"[blockmon] {payload['summary']}"[:200]
        await self._deliver(build_email(subject, render_text(payload), sender=self.sender,
                                        recipients=self.recipients,
                                        alert_id=payload.get("alert_id")))

    async def send_digest(self, digest: Mapping[str, Any], *, delivery_id: int | None) -> None:
        await self._deliver(build_email(f"[blockmon] {digest['summary']}",
                                        render_digest_text(digest), sender=self.sender,
                                        recipients=self.recipients))
