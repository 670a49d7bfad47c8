"""The deterministic test helpers of ``tests/testing.py`` do what they promise."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from discoro import Coro
from discoro.errors import ProtocolError
from discoro.wire import ConnectionClosed, HandshakeComplete, Message
from testing import ManualClock, WirePair, all_blocked, events_of, wait_all_blocked

TIMEOUT = 10.0


def test_all_blocked_waits_for_a_coroutine_that_keeps_switching() -> None:
    trail: list[str] = []

    async def busy(coro: Any = None) -> str:
        for _ in range(200):  # runnable at every turn: not blocked yet
            await asyncio.sleep(0)
        trail.append("waiting")
        return await coro.receive()

    worker = Coro(busy)
    all_blocked(timeout=TIMEOUT)
    assert trail == ["waiting"]
    worker.send("go")
    assert worker.value(TIMEOUT) == "go"


def test_all_blocked_counts_a_ready_coroutine_as_not_blocked() -> None:
    """A message already sent wakes its receiver: all_blocked returns after it has run."""
    trail: list[Any] = []

    def receiver(coro: Any = None) -> Any:
        trail.append((yield coro.receive()))
        trail.append((yield coro.receive()))

    worker = Coro(receiver)
    all_blocked(timeout=TIMEOUT)
    worker.send(1)
    all_blocked(timeout=TIMEOUT)
    assert trail == [1]
    worker.send(2)
    worker.value(TIMEOUT)
    assert trail == [1, 2]


def test_wait_all_blocked_inside_a_coroutine_ignores_the_caller() -> None:
    trail: list[str] = []

    def other(coro: Any = None) -> Any:
        trail.append("other waits")
        yield coro.receive()

    async def caller(coro: Any = None) -> list[str]:
        waiter = Coro(other)
        await wait_all_blocked()
        seen = list(trail)
        waiter.terminate()
        return seen

    assert Coro(caller).value(TIMEOUT) == ["other waits"]


def test_all_blocked_times_out_while_a_coroutine_spins() -> None:
    stop: list[bool] = []

    async def spinner(coro: Any = None) -> None:
        while True:  # always runnable, until told to stop
            await asyncio.sleep(0)
            if stop:
                return

    worker = Coro(spinner)
    with pytest.raises(TimeoutError):
        all_blocked(timeout=0.2)
    stop.append(True)
    worker.value(TIMEOUT)


def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(5.0)
    assert clock() == clock() == 5.0
    clock.advance(2.5)
    assert clock() == 7.5
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance(-1)


def test_wire_pair_handshake_and_messages_both_ways() -> None:
    pair = WirePair().handshake()
    ping, pong = Message("ping", rid=3), Message("reply", rid=3, fields={"r": 1}, payload=b"x")
    assert pair.send(pair.client, ping, Message("pong")) == [ping, Message("pong")]
    assert pair.send(pair.server, pong) == [pong]
    assert pair.pump() == ([], [])
    assert events_of(pair.server, eof=True) == [ConnectionClosed(True)]


def test_wire_pair_with_different_secrets_fails_the_handshake() -> None:
    pair = WirePair(server_secret=b"another secret")
    pair.client.start()
    with pytest.raises(ProtocolError):
        pair.pump()


def test_wire_pair_reports_the_handshake_events() -> None:
    pair = WirePair()
    pair.client.start()
    client_events, server_events = pair.pump()
    assert client_events == [HandshakeComplete(pair.server.identity)]
    assert server_events == [HandshakeComplete(pair.client.identity)]
