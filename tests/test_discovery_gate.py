"""Discovery's defences without sockets: duplicate datagrams, the dial gate's rate limits
and backoff, and the summarising log (deterministic: explicit clocks, a fake network)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import pytest

from discoro.net import dialgate
from discoro.net.dialgate import DialGate
from discoro.net.discovery import Discovery
from discoro.net.location import Location
from discoro.net.ratelimit import SummaryLog, TokenBucket
from discoro.wire.discovery import Announcement, discovery_keys, encode_announcement

if TYPE_CHECKING:
    from collections.abc import Iterator

SECRET = b"gate secret"
KEYS = discovery_keys(SECRET)
HERE = Location("127.0.0.1", 1)


class FakeNet:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.secret = SECRET
        self.sid = "0" * 16  # below every other sid: this side dials
        self.name = "me"
        self.location = HERE
        self.udp_port = 51350
        self.closing = False
        self.peers: dict[Location, Any] = {}


@pytest.fixture
def discovery() -> Iterator[tuple[Discovery, list[Location], list[Announcement]]]:
    loop = asyncio.new_event_loop()
    found = Discovery(FakeNet(loop))  # type: ignore[arg-type]
    dialled: list[Location] = []
    forwarded: list[Announcement] = []
    found._dial = lambda location, sender: dialled.append(location)  # type: ignore[method-assign]
    found._forward = forwarded.append  # type: ignore[method-assign]
    try:
        yield found, dialled, forwarded
    finally:
        found.stop()
        loop.close()


def datagram(port: int, relay: bool = False, at: float | None = None) -> bytes:
    announcement = Announcement(
        tag=KEYS.tag,
        name=f"p{port}",
        addr="127.0.0.1",
        port=port,
        udp_port=9,
        sid="f" * 16,
        time=time.time() if at is None else at,
        relay=relay,
    )
    return encode_announcement(announcement, KEYS.mac_key)


def test_a_replay_within_the_window_is_handled_once(
    discovery: tuple[Discovery, list[Location], list[Announcement]],
) -> None:
    found, dialled, forwarded = discovery
    data = datagram(7000, relay=True)
    for _ in range(5):
        found.datagram_received(data, ("127.0.0.9", 9))
    assert len(forwarded) == 1  # relayed once, not once per copy
    assert dialled == [Location("127.0.0.1", 7000)]
    # the same announcement made again (a fresh time) is news: it is handled
    found.datagram_received(datagram(7000, relay=True, at=time.time() + 1), ("127.0.0.9", 9))
    assert len(forwarded) == 2


def test_remembered_datagrams_are_bounded(
    discovery: tuple[Discovery, list[Location], list[Announcement]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    found, dialled, _ = discovery
    monkeypatch.setattr("discoro.net.discovery.MAX_SEEN", 10)
    for port in range(7000, 7050):
        found.datagram_received(datagram(port), ("127.0.0.9", 9))
    assert len(found._seen) <= 10
    assert len(dialled) == 50


def test_the_gate_limits_each_source_and_all() -> None:
    now = 100.0
    gate = DialGate(now)
    one = [gate.check("10.0.0.1", Location("10.0.0.1", p), now) for p in range(40)]
    assert one.count("") == dialgate.PER_SOURCE_BURST
    assert set(one[int(dialgate.PER_SOURCE_BURST) :]) == {"source rate"}
    verdicts = [
        gate.check(f"10.0.1.{n}", Location(f"10.0.1.{n}", p), now)
        for n in range(20)
        for p in range(4)
    ]
    total = dialgate.TOTAL_BURST - dialgate.PER_SOURCE_BURST
    assert verdicts.count("") == total
    assert "total rate" in verdicts
    # a second later, a few more
    later = [gate.check(f"10.0.2.{n}", Location("10.0.2.1", n), now + 1) for n in range(40)]
    assert later.count("") == dialgate.TOTAL_RATE


def test_the_gate_backs_off_failed_locations_exponentially() -> None:
    now, there = 100.0, Location("10.0.0.1", 9)
    gate = DialGate(now)
    delays = []
    for _ in range(10):
        assert gate.check("s", there, now) == ""
        delays.append(gate.failed(there, now))
        assert gate.check("s", there, now + delays[-1] - 0.01) == "backoff"
        now += delays[-1]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    gate.succeeded(there)
    assert gate.check("s", there, now) == ""
    assert gate.failed(there, now) == 1  # counted afresh after a success


def test_token_bucket() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0)
    start = time.monotonic()
    assert [bucket.take(start) for _ in range(4)] == [True, True, True, False]
    assert bucket.take(start + 0.5)
    assert not bucket.take(start + 0.5)
    assert bucket.full(start + 10)


def test_summary_log_writes_a_burst_then_counts(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.new_event_loop()
    log = logging.getLogger("discoro.test.summary")
    try:
        summary = SummaryLog(loop, log, interval=0.01, burst=3, rate=0.001)
        with caplog.at_level(logging.WARNING, logger=log.name):
            for n in range(1000):
                summary.log("refused", "refused %d", n)
            summary.log("timeouts", "timed out")
            loop.run_until_complete(asyncio.sleep(0.05))
        messages = [record.getMessage() for record in caplog.records]
        assert messages[:4] == ["refused 0", "refused 1", "refused 2", "timed out"]
        assert len(messages) == 5
        assert "997 refused more" in messages[4]
        summary.close()
    finally:
        loop.close()
