"""The intake bound's log line (a transport thread whose core keeps up only just reaches the
bound hundreds of times a second): one line per `INTAKE_LOG_EVERY` seconds, counting the
times in between; links still pause and resume every time."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pytest

from discoro import AsynCoro
from discoro.net import transport_thread
from discoro.net.transport_thread import CoreHop, TransportThread
from discoro.wire.messages import Message

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.timeout(60)


class StubLink:
    """What the hop asks of a link: stop and start reading."""

    def __init__(self) -> None:
        self.intake_paused = False
        self.pauses = 0

    def pause_intake(self) -> None:
        self.intake_paused = True
        self.pauses += 1

    def resume_intake(self) -> None:
        self.intake_paused = False


@pytest.fixture
def transport() -> Iterator[TransportThread]:
    thread = TransportThread(name="test-transport")
    yield thread
    thread.stop()


async def reach_the_bound_and_drain(hop: CoreHop, link: StubLink, times: int) -> None:
    """(Transport loop.) ``times`` episodes: take in past the bound, then the core catches up."""
    message = Message("send", 0, {}, b"x" * 1000)
    for _ in range(times):
        while not link.intake_paused:
            hop.took(link, message)  # type: ignore[arg-type]
        hop.handed = hop.taken  # the core ran them all
        hop.resume_intake()


def test_the_bound_reached_again_and_again_is_logged_once_per_interval(
    transport: TransportThread, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(transport_thread, "INTAKE_HIGH", 10_000)
    monkeypatch.setattr(transport_thread, "INTAKE_LOW", 1_000)
    now = [1000.0]
    monkeypatch.setattr(transport_thread, "monotonic", lambda: now[0])
    hop = CoreHop(AsynCoro.instance(), transport)
    link = StubLink()
    caplog.set_level(logging.INFO, logger="discoro")

    def said() -> list[str]:
        return [r.message for r in caplog.records if "links stop reading" in r.message]

    transport.run_sync(reach_the_bound_and_drain(hop, link, 50), timeout=20)
    assert (link.pauses, hop.pauses, len(said())) == (50, 50, 1)
    assert "times since" not in said()[0]

    now[0] += transport_thread.INTAKE_LOG_EVERY - 0.5
    transport.run_sync(reach_the_bound_and_drain(hop, link, 10), timeout=20)
    assert len(said()) == 1  # still within the interval

    now[0] += 1.0
    transport.run_sync(reach_the_bound_and_drain(hop, link, 1), timeout=20)
    assert (link.pauses, len(said())) == (61, 2)
    assert "(60 times since the last such line)" in said()[1]
