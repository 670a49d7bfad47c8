"""Incoming ops find their target before they unpickle anything (issue 8).

Each op that names a target (a coroutine, a monitor, a channel, an RCI) is dispatched by the
real handler table of this process's network, for a target that does not exist, with a
payload whose unpickling creates a marker file. No marker may appear. The control case sends
the same payload to a target that exists, so the marker really would appear if unpickled.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from discoro import AsynCoro, Coro, Location
from discoro.wire.messages import Message

TIMEOUT = 10.0
NO_SUCH_ID = 987_654_321


class Bomb:
    """Unpickling it creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def dispatch(kernel: AsynCoro, message: Message) -> None:
    """Run the handler of ``message.op`` on the loop thread, as a link would."""
    network = kernel.network()
    peer = SimpleNamespace(
        location=Location("127.0.0.1", 1), link=None, unwatch=lambda *_: None, said_goodbye=False
    )

    async def run() -> None:
        network.dispatch_table[message.op](peer, message)

    kernel.run_sync(run(), TIMEOUT)


# op -> the fields that name a target no one has (rid 0: nothing is replied to port 1)
MISSING_TARGETS = {
    "send": {"c": NO_SUCH_ID},
    "deliver": {"c": NO_SUCH_ID},
    "monitor": {"c": NO_SUCH_ID},
    "throw": {"c": NO_SUCH_ID},
    "notify_exit": {"m": NO_SUCH_ID, "on": "gone", "oi": 5},
    "channel_send": {"n": "no-such-channel"},
    "channel_deliver": {"n": "no-such-channel"},
    "subscribe": {"n": "no-such-channel"},
    "unsubscribe": {"n": "no-such-channel"},
    "rci_call": {"n": "no-such-rci"},
    "reply": {},  # to a request this process never made (rid below)
}


@pytest.mark.parametrize("op", sorted(MISSING_TARGETS))
def test_a_message_for_a_missing_target_is_never_unpickled(
    op: str, net_kernel: AsynCoro, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(Bomb(marker), pickle.HIGHEST_PROTOCOL)
    rid = NO_SUCH_ID if op == "reply" else 0
    dispatch(net_kernel, Message(op, rid, MISSING_TARGETS[op], payload))
    assert not marker.exists()


@pytest.mark.parametrize("op", ["send", "deliver", "monitor", "throw"])
def test_the_same_payload_for_an_existing_coroutine_is_unpickled(
    op: str, net_kernel: AsynCoro, tmp_path: Path
) -> None:
    """The control: the bomb is live through the handler path when the target exists."""

    def idle(coro: Any = None) -> Any:
        while (yield coro.receive()) != "done":
            pass
        return "ended"

    target = Coro(idle)
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(Bomb(marker), pickle.HIGHEST_PROTOCOL)
    dispatch(net_kernel, Message(op, 0, {"c": target._id}, payload))
    assert marker.exists()
    target.send("done")
    assert target.value(TIMEOUT) == "ended"
