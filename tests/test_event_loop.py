"""blockmon runs on uvloop when the `fast` extra is installed, unless told to keep asyncio's loop."""

from __future__ import annotations

import asyncio

import pytest

from monitor.cli import EVENT_LOOP_ENV, choose_event_loop


@pytest.fixture
def restore_policy():
    yield
    asyncio.set_event_loop_policy(None)


def test_the_standard_loop_is_kept_when_asked(monkeypatch, restore_policy) -> None:
    monkeypatch.setenv(EVENT_LOOP_ENV, "asyncio")
    before = asyncio.get_event_loop_policy()
    assert choose_event_loop() == "asyncio"
    assert asyncio.get_event_loop_policy() is before


def test_uvloop_is_used_when_installed(monkeypatch, restore_policy) -> None:
    uvloop = pytest.importorskip("uvloop")
    monkeypatch.delenv(EVENT_LOOP_ENV, raising=False)
    assert choose_event_loop() == "uvloop"
    assert isinstance(asyncio.get_event_loop_policy(), uvloop.EventLoopPolicy)
    loop = asyncio.new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
