"""ControlService: the page of a single-endpoint request fetched after that endpoint's check,
with the same answers as when the two ran side by side."""

from __future__ import annotations

import asyncio

import pytest

from probes.connection import Connection
from probes.control_protocol import parse_control_request
from probes.helper import ControlService, HelperSettings
from probes.helper.steps import EndpointCheck


def _service(check_seconds: float, monkeypatch: pytest.MonkeyPatch) -> tuple[ControlService, list[str]]:
    service = ControlService(HelperSettings(allow_private=True, http_timeout=0.3))
    connected: list[str] = []

    async def slow_refused(endpoint: str, server_name: str | None) -> tuple[EndpointCheck, Connection | None]:
        connected.append(endpoint)
        await asyncio.sleep(check_seconds)
        return EndpointCheck(False, "connection_refused", None), None

    monkeypatch.setattr(service.steps, "connect", slow_refused)
    return service, connected


async def test_a_check_that_outlasts_the_page_time_makes_the_page_a_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    service, connected = _service(0.5, monkeypatch)
    request = parse_control_request({"http_request": "http://127.0.0.1:9/", "tcp_connect": ["127.0.0.1:9"]}, 16)
    answer = await service.control(request)
    assert answer["tcp_connect"] == {"127.0.0.1:9": {"status": False, "failure": "connection_refused"}}
    assert (answer["http_request"] or {})["failure"] == "generic_timeout_error"
    assert connected == ["127.0.0.1:9"]  # the page used the check, it did not connect again


async def test_a_check_within_the_page_time_gives_the_page_its_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    service, connected = _service(0.05, monkeypatch)
    request = parse_control_request({"http_request": "http://127.0.0.1:9/"}, 16)
    answer = await service.control(request)
    assert (answer["http_request"] or {})["failure"] == "connection_refused"
    assert connected == ["127.0.0.1:9"]
