"""Slack- and Mattermost-compatible incoming webhooks: {"text": ...} messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from monitor.alerts.channels.webhook import post_json
from monitor.alerts.messages import render_digest_text, render_text


def escape_mrkdwn(text: str) -> str:
    """The three characters Slack's mrkdwn reads as control: a target name like "<!channel>" or
    "<https://x|Dashboard>" would otherwise page everyone or show a disguised link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackChannel:
    """Both Slack and Mattermost accept a JSON body with a `text` field (mrkdwn)."""

    def __init__(self, url: str, *, timeout: float = 15.0, name: str = "slack") -> None:
        self.name = name
        self.url = url
        self.timeout = timeout

    async def send(self, payload: Mapping[str, Any], *, delivery_id: int | None) -> None:
        await post_json(self.name, self.url, {"text": escape_mrkdwn(render_text(payload))},
                        timeout=self.timeout)

    async def send_digest(self, digest: Mapping[str, Any], *, delivery_id: int | None) -> None:
        await post_json(self.name, self.url, {"text": escape_mrkdwn(render_digest_text(digest))},
                        timeout=self.timeout)
