"""Slack/Mattermost alerts through a real HTTP receiver on loopback: what the text may contain."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from monitor.alerts.channels.slack import SlackChannel
from monitor.alerts.messages import build_digest, render_text

# A target name is data from a registry or a collector's probes: in Slack's mrkdwn, "<!channel>"
# would page everyone and "<url|text>" would show a link under words it chose.
HOSTILE = "Evil <!channel> <https://phish.example/|Dashboard> & co"
PAYLOAD = {
    "schema": "blockmon.alert/1", "kind": "block_confirmed", "alert_id": 7,
    "at": "2026-11-25T18:10:00Z", "summary": f"{HOSTILE} is blocked at kz-1 (AS9198)",
    "incident": {"id": 1, "status": "open", "opened_at": "2026-11-25T18:10:00Z"},
    "target": {"id": "evil", "name": HOSTILE, "briefing": None},
    "where": [{"vantage_id": "kz-1", "probe_asn": "AS9198", "url": "https://evil.example/?a<b",
               "method": "dns.nxdomain", "since": "2026-11-25T18:10:00Z",
               "evidence_uid": "uid-1", "evidence_url": None}],
    "previous_methods": [],
}
ESCAPED = "Evil &lt;!channel&gt; &lt;https://phish.example/|Dashboard&gt; &amp; co"


async def test_names_cannot_mention_or_link_in_slack() -> None:
    received: list[dict[str, Any]] = []

    async def incoming_webhook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hooks/x", incoming_webhook)
    async with TestServer(app, host="127.0.0.1") as server:
        channel = SlackChannel(str(server.make_url("/hooks/x")), timeout=10)
        await channel.send(PAYLOAD, delivery_id=1)
        await channel.send_digest(build_digest([PAYLOAD]), delivery_id=2)
    single, digest = (message["text"] for message in received)
    for text in (single, digest):
        assert "<" not in text and ">" not in text
        assert f"{ESCAPED} is blocked at kz-1 (AS9198)" in text
    assert "https://evil.example/?a&lt;b" in single
    # Unescaping gives back exactly the plain text other channels send.
    assert single.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") == \
        render_text(PAYLOAD)
