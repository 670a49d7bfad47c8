"""RCI, remote coroutine invocation (reference 2.9): in one process and across two."""

from __future__ import annotations

import pickle
import time
from typing import Any

import pytest

from discoro import AsynCoro, Coro, MonitorException
from discoro.errors import RemoteError
from discoro.net.rci import RCI
from netpeers import run, start_peer

pytestmark = pytest.mark.timeout(30)

PROGRAM = """
    from discoro.net.rci import RCI

    def add(a, b, client=None, coro=None):
        if client is not None:
            client.send(("sum", a + b, coro))
        yield coro.receive()  # ends when told to
        return a + b

    async def times(a, b, client):
        client.send(("product", a * b))
        return a * b

    assert RCI(add).register() == 0
    assert RCI(times, name="mul").register() == 0
    temp = RCI(add, name="temp")
    assert temp.register() == 0

    def control(coro=None):
        coro.register("control")
        while True:
            request, client = yield coro.receive()
            if request == "unregister temp":
                client.send(temp.unregister())

    Coro(control)
"""


class OnlyHere:
    """A class the child cannot import: instances do not unpickle there."""


def test_locate_and_call_remote_rcis(net_kernel: AsynCoro) -> None:
    with start_peer(net_kernel, PROGRAM) as child:

        def main(coro: Any = None) -> Any:
            add = yield RCI.locate("add", child.location, timeout=5)
            assert isinstance(add, RCI) and add._remote
            assert add.name == "add" and add.location == child.location
            assert str(add) == f"add@{child.location}"
            mul = yield RCI.locate("mul", timeout=5)  # asks every peer
            assert mul is not None and mul.location == child.location

            rcoro = yield add(2, 3, client=coro)
            assert isinstance(rcoro, Coro) and rcoro._remote
            assert rcoro.name == "add" and rcoro.location == child.location
            tag, total, injected = yield coro.receive(timeout=5)
            assert (tag, total) == ("sum", 5)
            assert injected == rcoro  # the coroutine got its own Coro as ``coro``
            assert (yield coro.monitor(rcoro)) == 0
            assert rcoro.send("end") == 0
            notice = yield coro.receive(timeout=5)
            assert isinstance(notice, MonitorException)
            assert notice.args[0] == rcoro
            assert notice.args[1] == (StopIteration, 5)

            rcoro = yield add(a=10, b=20, client=coro)  # keyword arguments
            assert (yield coro.receive(timeout=5))[:2] == ("sum", 30)
            rcoro.send("end")

            product = yield mul(4, 5, coro)  # an async def RCI
            assert isinstance(product, Coro) and product.location == child.location
            assert (yield coro.receive(timeout=5)) == ("product", 20)

        run(main)


def test_remote_creation_failure_raises_with_the_remote_traceback(net_kernel: AsynCoro) -> None:
    with start_peer(net_kernel, PROGRAM) as child:

        def main(coro: Any = None) -> Any:
            add = yield RCI.locate("add", child.location, timeout=5)
            try:
                yield add(1)  # b is missing
            except RemoteError as error:
                assert error.type_name == "TypeError"
                assert "b" in error.message
                assert "Traceback" in error.traceback_text
                assert "TypeError" in error.traceback_text
            else:
                raise AssertionError("a call with a missing argument did not raise")

            try:
                yield add(OnlyHere(), 1)  # the child cannot unpickle the arguments
            except RemoteError as error:
                assert error.type_name in ("ModuleNotFoundError", "AttributeError")
                assert "OnlyHere" in error.traceback_text or "test_rci" in error.traceback_text
            else:
                raise AssertionError("arguments that do not unpickle did not raise")

            with pytest.raises((pickle.PicklingError, AttributeError, TypeError)):
                yield add(lambda: 0, 1)  # cannot even be pickled here

        run(main)


def test_locate_timeout_unregister_and_a_dead_owner(net_kernel: AsynCoro) -> None:
    with start_peer(net_kernel, PROGRAM) as child:

        def main(coro: Any = None) -> Any:
            started = time.monotonic()
            assert (yield RCI.locate("nothing", timeout=0.3)) is None
            assert time.monotonic() - started >= 0.25
            assert (yield RCI.locate("nothing", child.location, timeout=5)) is None

            temp = yield RCI.locate("temp", child.location, timeout=5)
            assert temp is not None
            control = yield Coro.locate("control", child.location, timeout=5)
            control.send(("unregister temp", coro))
            assert (yield coro.receive(timeout=5)) == 0
            assert (yield RCI.locate("temp", child.location, timeout=5)) is None
            try:
                yield temp(1, 2)
            except RemoteError as error:
                assert error.type_name == "LookupError"
                assert "temp" in error.message
            else:
                raise AssertionError("calling an unregistered RCI did not raise")
            return (yield RCI.locate("add", child.location, timeout=5))

        add = run(main)
        child.proc.kill()

        def call_dead(coro: Any = None) -> Any:
            return (yield add(1, 2))

        assert run(call_dead) is None


def gen_double(value: int, coro: Any = None) -> Any:
    yield coro.sleep(0)
    return 2 * value


async def async_triple(value: int) -> int:
    return 3 * value


def plain(value: int) -> int:
    return value


def test_local_rci(net_kernel: AsynCoro) -> None:
    with pytest.raises(TypeError, match="generator function"):
        RCI(plain)
    with pytest.raises(TypeError):
        RCI(gen_double, name="")

    double = RCI(gen_double)
    assert double.name == "gen_double"
    assert double.register() == 0
    assert double.register() == 0  # again: still the holder
    assert RCI(gen_double).register() == -1  # the name is taken
    triple = RCI(async_triple, name="triple-local")
    assert triple.register() == 0
    try:
        assert pickle.loads(pickle.dumps(double)) is double

        def main(coro: Any = None) -> Any:
            found = yield RCI.locate("gen_double")
            assert found is double
            here = AsynCoro.instance().location
            assert (yield RCI.locate("triple-local", here)) is triple
            doubled = yield double(21)
            tripled = yield triple(value=5)
            assert isinstance(doubled, Coro) and not doubled._remote
            return (yield doubled.finish()), (yield tripled.finish())

        assert run(main) == (42, 15)
    finally:
        assert double.unregister() == 0
        assert triple.unregister() == 0
    assert double.unregister() == -1

    gone = pickle.loads(pickle.dumps(double))  # no longer registered: a dead handle

    def call_gone(coro: Any = None) -> Any:
        return (yield gone(1))

    assert gone is not double and gone.name == "gen_double"
    assert run(call_gone) is None
