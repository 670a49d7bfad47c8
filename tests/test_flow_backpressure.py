"""Back-pressure on remote sends (issue 9, DESIGN decision 5): `send` never blocks, a
coroutine that filled a link is held at its next suspension point, a thread waits in `send`,
and the sender's queued bytes stay bounded while the receiver cannot keep up."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from discoro import AsynCoro, Coro
from discoro.net import flow
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
    link = kernel.network().peers[location].link
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
