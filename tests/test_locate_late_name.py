"""`locate` without a location keeps asking a peer that had no such name yet: a process is
online (linked) a moment before its programs register their names (a client started beside
the scheduler program found it online and got one "no such name" for good before)."""

from __future__ import annotations

from typing import Any

import pytest

from discoro import AsynCoro, Coro
from netpeers import run, start_peer

pytestmark = pytest.mark.timeout(60)

PROGRAM = """
    def late(coro=None):
        while True:
            client = yield coro.receive()
            client.send("late here")

    def registrar(coro=None):
        while True:
            name = yield coro.receive()
            assert Coro(late).register(name) == 0

    assert Coro(registrar).register("registrar") == 0
"""


def test_a_name_registered_after_the_first_answer_is_found(net_kernel: AsynCoro) -> None:
    with start_peer(net_kernel, PROGRAM) as child:

        def finder(client: Any, coro: Any = None) -> Any:
            client.send((yield Coro.locate("late", timeout=20)))

        def main(coro: Any = None) -> Any:
            registrar = yield Coro.locate("registrar", child.location, timeout=10)
            assert isinstance(registrar, Coro)
            assert (yield Coro.locate("late", child.location, timeout=10)) is None  # not yet
            Coro(finder, coro)  # asks every online peer: the child answers "no such name"
            yield coro.sleep(0.5)  # (that answer takes milliseconds on loopback)
            registrar.send("late")
            found = yield coro.receive(timeout=30)
            assert isinstance(found, Coro) and found.location == child.location, found
            found.send(coro)
            assert (yield coro.receive(timeout=10)) == "late here"

        run(main, timeout=50)
