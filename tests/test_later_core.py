"""The core and distributed additions of the later versions (later-versions 7, D1, D7):
module paths, names, ``atexit(priority, ...)``, ``value``/``finish`` with a timeout,
``is_alive``, ``recv``, the ``target=`` keywords, the `Logger` constants and ``show_ms``, and
the peer calls ``peers``, ``close_peer``, ``discover_peers`` and ``ignore_peers``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest

import discoro
from discoro import Coro
from procs import SRC, PeerProcess


def run(program: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program)],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": SRC},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


# -- names and module paths ---------------------------------------------------------------


def test_module_paths_through_an_asyncoro_alias() -> None:
    lines = run(
        """
        import discoro.disasyncoro as asyncoro
        from discoro.discoro import *
        import discoro

        print(asyncoro.discoro.MinPulseInterval == MinPulseInterval)
        print(asyncoro.httpd.HTTPServer.__name__, asyncoro.asyncfile.AsyncPipe.__name__)
        print(asyncoro.Coro is discoro.Coro, asyncoro.Location is discoro.Location)
        print(DiscoroCoroInfo is CoroInfo, DiscoroStatus is StatusMessage)
        print(sorted(n for n in ("DiscoroNodeAllocate", "DiscoroNodeInfo",
                                 "DiscoroNodeAvailInfo", "Scheduler") if n in globals()))
        print(asyncoro.Singleton is asyncoro.MetaSingleton,
              asyncoro.deserialize is asyncoro.unserialize)
        print(asyncoro.MsgTimeout, asyncoro.Logger.DEBUG, asyncoro.logger.__class__.__name__)
        print(discoro.Scheduler.ComputationScheduled)
        """
    )
    assert lines == [
        "True",
        "HTTPServer AsyncPipe",
        "True True",
        "True True",
        "['DiscoroNodeAllocate', 'DiscoroNodeAvailInfo', 'DiscoroNodeInfo', 'Scheduler']",
        "True True",
        "10 10 Logger",
        "23",
    ]


def test_facade_exports_the_later_names() -> None:
    assert discoro.DiscoroCoroInfo is discoro.CoroInfo
    assert discoro.Singleton is discoro.MetaSingleton
    assert discoro.deserialize is discoro.unserialize
    assert discoro.discoro.DiscoroNodeInfo is discoro.DiscoroNodeInfo
    assert discoro.disasyncoro.Coro is discoro.Coro


# -- Coro ---------------------------------------------------------------------------------


def test_value_and_finish_with_a_timeout() -> None:
    def slow(coro: Any = None) -> Any:
        message = yield coro.receive()
        return message * 2

    def waiter(target: Coro, coro: Any = None) -> Any:
        early = yield target.finish(timeout=0.05)
        target.send(21)
        late = yield target.finish(timeout=10)
        return early, late

    target = Coro(slow)
    assert target.value(timeout=0.05) is None and target.is_alive()
    assert Coro(waiter, target).value(timeout=10) == (None, 42)
    assert not target.is_alive() and target.value(timeout=0.01) == 42


def test_target_keywords_and_recv() -> None:
    def echo(a: int, b: int = 0, coro: Any = None) -> Any:
        got = yield coro.recv(timeout=5)
        return (a, b, got)

    coro = Coro(target=echo, args=(1,), kwargs={"b": 2})
    coro.send("hi")
    assert coro.value(timeout=10) == (1, 2, "hi")
    assert Coro(echo, 3).hot_swap is not None
    with pytest.raises(TypeError, match="needs a target"):
        Coro()
    with pytest.raises(TypeError, match="unexpected keyword"):
        Coro(target=echo, args=(1,), colour="red")


def test_hot_swap_target_keywords() -> None:
    def first(coro: Any = None) -> Any:
        coro.hot_swappable(True)
        while True:
            yield coro.receive()

    def second(n: int, coro: Any = None) -> Any:
        yield coro.sleep(0)
        return n

    coro = Coro(first)
    coro.hot_swap(target=second, args=(7,))
    assert coro.value(timeout=10) == 7


def test_atexit_priority_form() -> None:
    lines = run(
        """
        import discoro

        kernel = discoro.AsynCoro.instance()
        kernel.atexit(lambda: print("seed form"))
        kernel.atexit(10, print, "priority", 10)
        kernel.atexit(5, print, "priority", 5)
        kernel.atexit(-1, print, "last")
        try:
            kernel.atexit(3)
        except TypeError as exc:
            print("refused:", exc)
        kernel.finish()
        """
    )
    assert lines[0].startswith("refused: atexit() needs a function")
    assert lines[1:] == ["priority 10", "priority 5", "seed form", "last"]


# -- logger -------------------------------------------------------------------------------


def test_logger_constants_warn_and_show_ms() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import discoro
                from discoro import Logger, logger
                assert (Logger.DEBUG, Logger.INFO, Logger.WARN, Logger.WARNING) == (10, 20, 30, 30)
                assert (Logger.ERROR, Logger.CRITICAL, Logger.FATAL) == (40, 50, 50)
                logger.setLevel(Logger.DEBUG)
                logger.show_ms(False)
                logger.warn("without ms")
                logger.show_ms(True)
                logger.debug("with ms")
                logger.fatal("fatal too")
                """
            ),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": SRC, "PYTHONWARNINGS": "error"},
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 3, result.stderr
    assert lines[0].endswith(" - discoro - without ms") and "," not in lines[0].split(" - ")[0]
    assert lines[1].endswith(" - discoro - with ms") and "," in lines[1].split(" - ")[0]
    assert lines[2].endswith(" - discoro - fatal too")


# -- peers ---------------------------------------------------------------------------------

PEER = """
import sys
import discoro
kernel = discoro.AsynCoro(node="127.0.0.1", udp_port=int(sys.argv[1]), name="peer-" + sys.argv[2])
print("LOCATION", kernel.location, flush=True)
sys.stdin.readline()
"""


@pytest.mark.timeout(60)
def test_peers_close_peer_and_ignore_peers(net_kernel: Any, udp_port: int) -> None:
    kernel = net_kernel

    def call(func: Any, *args: Any) -> Any:
        async def body(coro: Any = None) -> Any:
            return await func(*args)

        return Coro(body).value(timeout=30)

    call(kernel.discover_peers)
    with PeerProcess(PEER, str(udp_port), "a") as peer:
        where = peer.expect(r"^LOCATION (\S+)$", timeout=20)[1]
        deadline_ok = False
        for _ in range(200):  # discovery finds it: wait for the event, bounded
            if any(str(loc) == where for loc in kernel.peers()):
                deadline_ok = True
                break
            Coro(_nap).value(timeout=5)
        assert deadline_ok, kernel.peers()
        location = next(loc for loc in kernel.peers() if str(loc) == where)
        assert call(kernel.close_peer, location, 5) == 0
        assert all(str(loc) != where for loc in kernel.peers())
        assert call(kernel.close_peer, location, 1) == -1
        kernel.ignore_peers(True)
        try:
            assert call(kernel.discover_peers) == 0  # the peer replies; we ignore it
            assert call(kernel.peer, location) == 0  # a peer by hand still works
            assert any(str(loc) == where for loc in kernel.peers())
        finally:
            kernel.ignore_peers(False)
        peer.proc.stdin.write("\n")  # type: ignore[union-attr]
        peer.proc.stdin.flush()  # type: ignore[union-attr]


def _nap(coro: Any = None) -> Any:
    yield coro.sleep(0.05)


QUIET_PEER = """
import sys
import discoro
kernel = discoro.AsynCoro(node="127.0.0.1", udp_port=int(sys.argv[1]), name="quiet",
                          discover_peers=False)


def announce(coro=None):
    yield kernel.discover_peers()


print("LOCATION", kernel.location, flush=True)
sys.stdin.readline()
discoro.Coro(announce).value(10)
print("ANNOUNCED", flush=True)
sys.stdin.readline()
"""


@pytest.mark.timeout(60)
def test_discover_peers_false_waits_for_an_explicit_announcement(
    net_kernel: Any, udp_port: int
) -> None:
    kernel = net_kernel
    with PeerProcess(QUIET_PEER, str(udp_port)) as peer:
        where = peer.expect(r"^LOCATION (\S+)$", timeout=20)[1]
        assert all(str(loc) != where for loc in kernel.peers())  # it did not announce
        peer.proc.stdin.write("\n")  # type: ignore[union-attr]
        peer.proc.stdin.flush()  # type: ignore[union-attr]
        peer.expect(r"^ANNOUNCED$", timeout=20)
        for _ in range(400):  # discovery finds it now: wait for the event, bounded
            if any(str(loc) == where for loc in kernel.peers()):
                break
            Coro(_nap).value(timeout=5)
        assert any(str(loc) == where for loc in kernel.peers())
        peer.proc.stdin.write("\n")  # type: ignore[union-attr]
        peer.proc.stdin.flush()  # type: ignore[union-attr]
