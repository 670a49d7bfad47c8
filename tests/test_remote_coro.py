"""Remote coroutines (reference 1.5, 1.6, 2.6 to 2.8): send, deliver, monitor, terminate,
throw and locate across two processes, and what a peer's death looks like."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from discoro import AsynCoro, Coro, MonitorException, PeerStatus
from discoro.errors import RemoteError
from netpeers import run, start_peer

pytestmark = pytest.mark.timeout(30)

PROGRAM = """
    class LocalOnly(Exception):
        "Defined in this process's __main__: the test process cannot unpickle it."

    def echo(coro=None):
        while True:
            client, payload = yield coro.receive()
            client.send(payload)

    def sink(coro=None):
        while True:
            print("SINK", (yield coro.receive()), flush=True)

    def returns(coro=None):
        yield coro.receive()
        return 42

    def raises(coro=None):
        yield coro.receive()
        raise ValueError("bad value")

    def raises_local(coro=None):
        yield coro.receive()
        raise LocalOnly("only here")

    def catcher(coro=None):
        client = yield coro.receive()
        client.send("ready")
        while True:
            try:
                yield coro.receive()
            except KeyError as error:
                client.send(("caught", error.args[0]))

    def factory(coro=None):
        kinds = {f.__name__: f for f in (returns, raises, raises_local, catcher)}
        while True:
            kind, client = yield coro.receive()
            client.send(Coro(kinds[kind]))

    assert Coro(echo).register("echo") == 0
    assert Coro(sink).register("sink") == 0
    assert Coro(factory).register("factory") == 0
"""


def make(factory: Coro, kind: str, coro: Any) -> Any:
    """A new coroutine of ``kind`` in the child (a nested generator call)."""
    factory.send((kind, coro))
    made = yield coro.receive(timeout=5)
    assert isinstance(made, Coro) and made._remote
    return made


def test_send_locate_and_reply_through_a_passed_handle(net_kernel: AsynCoro) -> None:
    with start_peer(net_kernel, PROGRAM) as child:

        def main(coro: Any = None) -> Any:
            echo = yield Coro.locate("echo", child.location, timeout=5)
            assert isinstance(echo, Coro) and echo._remote
            assert echo.name == "echo" and echo.location == child.location
            anywhere = yield Coro.locate("echo", timeout=5)
            assert anywhere == echo
            assert (yield Coro.locate("nobody", child.location, timeout=5)) is None
            started = time.monotonic()
            assert (yield Coro.locate("nobody", timeout=0.3)) is None
            assert time.monotonic() - started >= 0.25

            count = 10_000
            for i in range(count):
                assert echo.send((coro, i)) == 0  # the echo replies through our handle
            got = []
            for _ in range(count):
                got.append((yield coro.receive(timeout=10)))
            assert got == list(range(count))

        run(main, timeout=30)


def test_deliver_one_zero_and_minus_one(net_kernel: AsynCoro) -> None:
    with start_peer(net_kernel, PROGRAM) as child:

        def main(coro: Any = None) -> Any:
            sink = yield Coro.locate("sink", child.location, timeout=5)
            assert (yield sink.deliver("first", timeout=5)) == 1
            assert (yield sink.deliver("second")) == 1

            factory = yield Coro.locate("factory", child.location, timeout=5)
            ended = yield make(factory, "returns", coro)
            assert (yield coro.monitor(ended)) == 0
            ended.send("end")
            assert isinstance((yield coro.receive(timeout=5)), MonitorException)
            assert (yield ended.deliver("too late", timeout=5)) == -1
            return sink

        sink = run(main)
        child.expect("SINK first")
        child.expect("SINK second")

        pid = child.proc.proc.pid
        os.kill(pid, signal.SIGSTOP)  # it cannot answer in time now
        os.waitpid(pid, os.WUNTRACED)  # returns once it has stopped
        try:

            def paused(coro: Any = None) -> Any:
                return (yield sink.deliver("paused", timeout=0.3))

            assert run(paused) == 0
        finally:
            os.kill(pid, signal.SIGCONT)
        child.expect("SINK paused")  # it did arrive, late


def test_monitor_a_remote_coroutine(net_kernel: AsynCoro) -> None:
    with start_peer(net_kernel, PROGRAM) as child:

        def end_of(factory: Coro, kind: str, coro: Any) -> Any:
            observed = yield make(factory, kind, coro)
            assert (yield coro.monitor(observed)) == 0
            observed.send("go")
            notice = yield coro.receive(timeout=5)
            assert isinstance(notice, MonitorException)
            assert notice.args[0] == observed and notice.args[0].location == child.location
            return notice

        def main(coro: Any = None) -> Any:
            factory = yield Coro.locate("factory", child.location, timeout=5)

            notice = yield end_of(factory, "returns", coro)
            assert notice.args[1] == (StopIteration, 42)

            notice = yield end_of(factory, "raises", coro)
            kind, value = notice.args[1]  # a remote monitor gets (type, value)
            assert kind is ValueError and isinstance(value, ValueError)
            assert value.args == ("bad value",)
            assert "Traceback" in notice.remote_traceback
            assert "in raises" in notice.remote_traceback
            assert "ValueError: bad value" in notice.remote_traceback

            notice = yield end_of(factory, "raises_local", coro)
            kind, value = notice.args[1]  # its class does not unpickle here
            assert kind is RemoteError and isinstance(value, RemoteError)
            assert value.type_name == "LocalOnly" and value.message == "only here"
            assert "LocalOnly: only here" in value.traceback_text
            assert "in raises_local" in notice.remote_traceback

        run(main)


def test_terminate_and_throw_a_remote_coroutine(net_kernel: AsynCoro) -> None:
    with start_peer(net_kernel, PROGRAM) as child:

        def main(coro: Any = None) -> Any:
            factory = yield Coro.locate("factory", child.location, timeout=5)

            victim = yield make(factory, "returns", coro)
            assert (yield coro.monitor(victim)) == 0
            assert victim.terminate() == 0
            notice = yield coro.receive(timeout=5)
            assert notice.args[0] == victim
            assert notice.args[1][0] is StopIteration  # terminate is a normal end

            catcher = yield make(factory, "catcher", coro)
            catcher.send(coro)
            assert (yield coro.receive(timeout=5)) == "ready"  # in its try block now
            assert catcher.throw(KeyError("k1")) == 0
            assert (yield coro.receive(timeout=5)) == ("caught", "k1")
            assert catcher.throw(KeyError, "k2") == 0
            assert (yield coro.receive(timeout=5)) == ("caught", "k2")

            assert (yield coro.monitor(catcher)) == 0
            assert catcher.throw(ValueError("not caught")) == 0
            notice = yield coro.receive(timeout=5)
            assert notice.args[0] == catcher
            assert notice.args[1][0] is ValueError
            assert notice.args[1][1].args == ("not caught",)
            assert "ValueError: not caught" in notice.remote_traceback

        run(main)


def test_a_killed_peer_ends_its_monitors_and_tells_every_status_subscriber(
    net_kernel: AsynCoro,
) -> None:
    def status_watch(tag: str, location: Any, main: Coro, coro: Any = None) -> Any:
        """Forward ``(tag, status)`` to ``main`` for each status of the peer at ``location``
        (other peers, e.g. those of earlier tests going offline, are none of our business)."""
        kernel = AsynCoro.instance()
        kernel.peer_status(coro)
        main.send(("watching", tag))
        try:
            while True:
                status = yield coro.receive()
                if status.location == location:
                    main.send((tag, status.status))
        finally:
            kernel.unsubscribe_peer_status(coro)

    with start_peer(net_kernel, PROGRAM, dial=False) as child:

        def main(coro: Any = None) -> Any:
            tags = ("w1", "w2")
            watchers = [Coro(status_watch, tag, child.location, coro) for tag in tags]
            for _ in tags:
                assert (yield coro.receive(timeout=5))[0] == "watching"
            assert (yield AsynCoro.instance().peer(child.location)) == 0
            got = set()
            for _ in tags:
                got.add((yield coro.receive(timeout=5)))
            assert got == {("w1", PeerStatus.Online), ("w2", PeerStatus.Online)}

            factory = yield Coro.locate("factory", child.location, timeout=5)
            doomed = yield make(factory, "returns", coro)
            assert (yield coro.monitor(doomed)) == 0
            started = time.monotonic()
            child.proc.kill()
            got = set()
            notice = None
            for _ in range(3):
                message = yield coro.receive(timeout=10)
                if isinstance(message, MonitorException):
                    notice = message
                else:
                    got.add(message)
            assert time.monotonic() - started < 5
            assert got == {("w1", PeerStatus.Offline), ("w2", PeerStatus.Offline)}
            assert notice is not None, "no MonitorException for a coroutine of a dead peer"
            assert notice.args[0] == doomed
            assert notice.args[1][0].__name__ == "PeerOffline"
            for watcher in watchers:
                watcher.terminate()

        run(main)


def test_a_message_sent_while_the_link_closes_waits_for_the_new_link(
    net_kernel: AsynCoro,
) -> None:
    with start_peer(net_kernel, PROGRAM) as child:
        network = net_kernel.network()

        def main(coro: Any = None) -> Any:
            echo = yield Coro.locate("echo", child.location, timeout=5)
            link = network.peers[child.location].link
            link.eof_received()  # as if the stream ended: the link closes, not yet lost
            assert echo.send((coro, "after the end")) == 0  # queued, not an error
            assert (yield coro.receive(timeout=5)) == "after the end"  # over a new link
            assert network.peers[child.location].link is not link

        run(main)
