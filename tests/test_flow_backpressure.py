"""Back-pressure on remote sends (issue 9, DESIGN decision 5): `send` never blocks, a
coroutine that filled a link is held at its next suspension point, a thread waits in `send`,
and the sender's queued bytes stay bounded while the receiver cannot keep up; a link torn down
with messages queued says how many it dropped and tells the monitors."""

from __future__ import annotations

import logging
import os
import re
import signal
import threading
from typing import Any

import pytest

from discoro import AsynCoro, Coro, MonitorException
from discoro.net import flow
from discoro.net.runtime import network_of
from netpeers import run, start_peer

pytestmark = pytest.mark.timeout(60)

HIGH, LOW = 2 * 1024 * 1024, 1024 * 1024
BLOB = b"x" * 10_000
COUNT = 5_000  # 50 MB: far more than the socket buffers hold while the receiver is blocked
BURST = 100  # sends between two suspension points

PROGRAM = """
    import time

    def slow(coro=None):
        while True:
            client, count, stall = yield coro.receive()
            time.sleep(stall)  # blocks this whole process: nothing is read meanwhile
            expected = 0
            while expected < count:
                number, blob = yield coro.receive()
                if number != expected or len(blob) != 10_000:
                    client.send(("bad", number, expected))
                    break
                expected += 1
            else:
                client.send(("ok", expected))

    assert Coro(slow).register("slow") == 0
"""


@pytest.fixture
def low_marks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small high/low-water marks (read when the test's link to the child connects)."""
    monkeypatch.setattr(flow, "SEND_HIGH", HIGH)
    monkeypatch.setattr(flow, "SEND_LOW", LOW)


def link_to(kernel: AsynCoro, location: Any) -> Any:
    link = network_of(kernel).peers[location].link
    assert link is not None
    return link


def test_a_tight_sender_is_held_and_a_slow_receiver_gets_everything_in_order(
    net_kernel: AsynCoro, low_marks: None
) -> None:
    with start_peer(net_kernel, PROGRAM) as child:
        link = link_to(net_kernel, child.location)

        def sender(coro: Any = None) -> Any:
            slow = yield Coro.locate("slow", child.location, timeout=5)
            assert (yield slow.deliver((coro, COUNT, 3.0), timeout=5)) == 1
            peak = held = 0
            for number in range(COUNT):
                assert slow.send((number, BLOB)) == 0  # never blocks, never fails
                peak = max(peak, link.queued_bytes)
                if number % BURST == BURST - 1:
                    held += coro._hold is not None
                    yield coro.sleep(0)
            verdict = yield coro.receive(timeout=40)
            return peak, held, verdict

        peak, held, verdict = run(sender, timeout=50)
        assert verdict == ("ok", COUNT)
        assert held > 0, "the receiver was blocked: the sender must have been held"
        # bounded by the high-water mark plus what one burst adds before the next yield
        assert LOW < peak <= HIGH + BURST * (len(BLOB) + 200), peak
        assert link.queued_bytes <= LOW


def test_a_thread_waits_in_send_and_fails_after_a_timeout(
    net_kernel: AsynCoro, low_marks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flow, "THREAD_SEND_TIMEOUT", 0.5)
    with start_peer(net_kernel, PROGRAM) as child:
        link = link_to(net_kernel, child.location)

        def locate(coro: Any = None) -> Any:
            slow = yield Coro.locate("slow", child.location, timeout=5)
            assert (yield slow.deliver((coro, COUNT, 6.0), timeout=5)) == 1
            return slow, coro

        slow, _client = run(locate)
        outcome: dict[str, Any] = {}
        sent = 0
        peak = 0

        def from_thread() -> None:
            nonlocal sent, peak
            try:
                for number in range(COUNT):
                    slow.send((number, BLOB))
                    sent += 1
                    peak = max(peak, link.queued_bytes)
            except TimeoutError as exc:
                outcome["error"] = exc

        thread = threading.Thread(target=from_thread)
        thread.start()
        thread.join(30)
        assert not thread.is_alive()
        # the receiver is blocked for 6 s: the thread waited, then gave up
        assert isinstance(outcome.get("error"), TimeoutError), outcome
        assert 0 < sent < COUNT
        assert peak <= HIGH + 2 * (len(BLOB) + 200)  # it waited instead of queueing more


TEARDOWN_PROGRAM = """
    def sleeper(coro=None):
        yield coro.sleep(1000)

    def sink(coro=None):
        while True:
            yield coro.receive()

    assert Coro(sleeper).register("sleeper") == 0
    assert Coro(sink).register("sink") == 0
"""


def test_a_link_torn_down_with_messages_queued_says_how_many_and_tells_monitors(
    net_kernel: AsynCoro, caplog: pytest.LogCaptureFixture
) -> None:
    blob = b"z" * (1 << 20)
    count = 40  # 40 MiB: most of it still queued when the link breaks
    with start_peer(net_kernel, TEARDOWN_PROGRAM) as child:
        link = link_to(net_kernel, child.location)
        pid = child.proc.proc.pid

        def main(coro: Any = None) -> Any:
            sleeper = yield Coro.locate("sleeper", child.location, timeout=5)
            sink = yield Coro.locate("sink", child.location, timeout=5)
            assert (yield coro.monitor(sleeper)) == 0
            os.kill(pid, signal.SIGSTOP)  # it reads nothing now
            os.waitpid(pid, os.WUNTRACED)
            for _ in range(count):
                sink.send(blob)
            queued = link.queued_bytes
            assert link.transport is not None
            link.transport.abort()  # the stream breaks, messages still queued
            notice = yield coro.receive(timeout=10)
            return queued, notice, sleeper

        try:
            with caplog.at_level(logging.WARNING, logger="discoro"):
                queued, notice, sleeper = run(main, timeout=30)
        finally:
            os.kill(pid, signal.SIGCONT)
        assert queued > 20 << 20
        assert isinstance(notice, MonitorException) and notice.args[0] == sleeper
        assert notice.args[1][0].__name__ == "LinkLost"
        lines = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        assert len(lines) == 1, lines
        match = re.match(r"dropped (\d+) message\(s\) queued for .*connection was lost", lines[0])
        assert match is not None, lines
        # every message not yet wholly handed to the socket was counted
        assert 20 <= int(match[1]) <= count, lines


def test_deliver_waits_for_room_only_within_its_timeout(net_kernel: AsynCoro) -> None:
    blob = b"d" * (1 << 20)
    with start_peer(net_kernel, TEARDOWN_PROGRAM) as child:
        pid = child.proc.proc.pid

        def main(coro: Any = None) -> Any:
            sink = yield Coro.locate("sink", child.location, timeout=5)
            os.kill(pid, signal.SIGSTOP)  # it reads nothing now: the link stays full
            os.waitpid(pid, os.WUNTRACED)
            for _ in range(40):
                sink.send(blob)
            return (yield sink.deliver("late", timeout=0.5))

        try:
            assert run(main, timeout=20) == 0  # timed out waiting for room: not delivered
        finally:
            os.kill(pid, signal.SIGCONT)
