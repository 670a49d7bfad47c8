"""A loop polls for a moment after network traffic before it sleeps (`core.idle_spin`): it
spins only within its window, not at all when the window is 0, gives way when another thread
needs the CPU, and a real process that has finished a ping-pong goes back to using no CPU."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from discoro import AsynCoro, Coro
from discoro.core import idle_spin
from discoro.core.idle_spin import SPIN_ENV, IdleSpin, adapted, spin_window
from netpeers import run, start_peer

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(("text", "seconds"), [("", 1000e-6), ("0", 0.0), (" 150 ", 150e-6)])
def test_the_window_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, text: str, seconds: float
) -> None:
    monkeypatch.setattr(idle_spin, "_default_us", idle_spin.DEFAULT_SPIN_US)
    monkeypatch.setenv(SPIN_ENV, text)
    assert spin_window() == pytest.approx(seconds)
    idle_spin.serving()  # a server process: a shorter default, the variable still decides
    assert spin_window() == pytest.approx(seconds if text.strip() else 200e-6)


SERVER_WINDOWS = """
def windows(coro=None):
    from discoro.core.kernel import AsynCoro
    from discoro.net.runtime import network_thread

    kernel = AsynCoro.instance()
    threaded = network_thread(kernel)  # the loop that reads the server's links
    return (threaded.transport.spin if threaded is not None else kernel.spin).most
    yield


def client(coro=None):
    from discoro.core.kernel import AsynCoro

    comp = yield from start([windows], coro, nprocs=1)
    job = yield comp.run(windows)
    out("CLIENT", AsynCoro.instance().spin.most, type(job).__name__)
    yield comp.close()
    return "ok"
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("args", [[], ["--no-net-thread"]], ids=["transport-thread", "one-loop"])
def test_a_server_process_polls_for_a_shorter_window_than_a_client(
    cluster_secret: str, udp_port: int, args: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop that reads a server's links waits for requests (`SERVE_SPIN_US`), a
    client's for answers (`DEFAULT_SPIN_US`): see the module text of `core.idle_spin`."""
    import discoro
    from cluster_programs import run_client

    monkeypatch.delenv(SPIN_ENV, raising=False)  # the node and the client inherit this
    cluster = discoro.local_cluster(procs=1, udp_port=udp_port, secret=cluster_secret, args=args)
    with cluster:
        with run_client(SERVER_WINDOWS, udp_port, nprocs=1) as client:
            client.expect(r"^CLIENT 0\.001 Coro$", timeout=60)
            client.expect(r"^DONE ok$", timeout=60)
            assert client.wait(20) == 0
        ends = [line for line in client.output if line.startswith("MONITOR ")]
        assert len(ends) == 1 and ends[0].endswith("StopIteration 0.0002"), client.output


@pytest.mark.parametrize("text", ["abc", "-1", "nan", "1e"])
def test_a_bad_window_is_refused_by_name(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setenv(SPIN_ENV, text)
    with pytest.raises(ValueError, match=SPIN_ENV):
        spin_window()


def spin_until_idle(window: float) -> tuple[IdleSpin, int]:
    """Touch a fresh loop's spin once; run the loop until the spin has stopped, then a while
    longer: (the spin, its turns when it stopped)."""
    loop = asyncio.new_event_loop()
    try:
        spin = IdleSpin(loop, window)

        async def main() -> int:
            spin.touch()
            while spin.spinning:  # noqa: ASYNC110 (the spin has no event: a hot path)
                await asyncio.sleep(0.001)
            stopped_at = spin.turns
            await asyncio.sleep(0.05)  # no activity: no more turns
            return stopped_at

        return spin, loop.run_until_complete(asyncio.wait_for(main(), 10))
    finally:
        loop.close()


def test_the_window_grows_while_spinning_would_catch_the_traffic_and_shrinks_when_not() -> None:
    most = 200e-6
    near, far = 130e-6, 300e-6  # gaps between activities: a same-host peer, a far one
    assert adapted(0.0, near, most) == most / 4  # off: back on from a quarter
    assert adapted(most / 4, near, most) == most / 2
    assert adapted(most, near, most) == most  # never past the configured most
    assert adapted(most, far, most) == most / 2
    window, windows = most, []
    for _ in range(5):
        window = adapted(window, far, most)
        windows.append(window)
    assert windows == [most / 2, most / 4, most / 8, most / 16, 0.0]  # then off for good
    assert adapted(0.0, far, most) == 0.0
    for _ in range(3):
        window = adapted(window, near, most)
    assert window == most


def test_traffic_with_gaps_longer_than_the_window_soon_gets_no_spinning() -> None:
    loop = asyncio.new_event_loop()
    try:
        spin = IdleSpin(loop, 0.001)

        async def main() -> list[float]:
            windows = []
            for _ in range(8):
                spin.touch()
                windows.append(spin.window)
                await asyncio.sleep(0.01)  # the next activity comes 10 windows later
            return windows

        windows = loop.run_until_complete(asyncio.wait_for(main(), 10))
    finally:
        loop.close()
    assert windows[-1] == 0.0 and windows[-2] == 0.0
    assert not spin.spinning  # the last touches started no spinning


def test_a_touched_loop_spins_then_sleeps() -> None:
    spin, stopped_at = spin_until_idle(0.002)
    assert stopped_at > 0
    assert spin.turns == stopped_at and not spin.spinning


def test_a_window_of_zero_never_spins() -> None:
    spin, stopped_at = spin_until_idle(0.0)
    assert spin.turns == stopped_at == 0


CONTENDED = """
import asyncio, os, subprocess, sys, time
from discoro.core.idle_spin import IdleSpin
cpu = min(os.sched_getaffinity(0))
os.sched_setaffinity(0, {cpu})  # this process and a busy one share one CPU
hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
os.sched_setaffinity(hog.pid, {cpu})
try:
    loop = asyncio.new_event_loop()
    spin = IdleSpin(loop, 1.0)

    async def main():
        await asyncio.sleep(0.2)  # the busy process is running
        wall, cpu_time = time.monotonic(), time.thread_time()
        spin.touch()
        while spin.spinning:
            await asyncio.sleep(0)
        return time.thread_time() - cpu_time, time.monotonic() - wall

    used, spun = loop.run_until_complete(asyncio.wait_for(main(), 20))
    print("SHARE", used / spun)
finally:
    hog.kill()
    hog.wait()
"""


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="Linux CPU affinity")
def test_spinning_gives_way_to_another_thread_on_its_cpu() -> None:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CONTENDED)],
        capture_output=True,
        text=True,
        timeout=40,
        check=True,
    ).stdout
    share = float(out.split("SHARE")[1])
    # a spinner that did not yield would take about half the CPU from the busy process
    assert share < 0.25, out


ECHO = """
    from discoro.net.runtime import network_of

    network_loop_spin = network_of(kernel).kernel.spin  # the transport loop's, if threaded

    def echo(coro=None):
        while True:
            message, sender = yield coro.receive()
            if message == "turns":
                message = (network_loop_spin.turns, kernel.spin.turns)
            sender.send(message)

    assert Coro(echo).register("echo") == 0
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


MODES = {"one loop": {"DISCORO_NET_THREAD": "0"}, "transport thread": {"DISCORO_NET_THREAD": "1"}}


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc")
@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_process_spins_during_a_ping_pong_and_idles_after_it(
    net_kernel: AsynCoro, mode: str
) -> None:
    def ping_pong(location: Any, coro: Any = None) -> Any:
        echo = yield Coro.locate("echo", location, timeout=5)
        for i in range(500):
            echo.send((i, coro))
            assert (yield coro.receive(timeout=10)) == i
        echo.send(("turns", coro))
        return (yield coro.receive(timeout=10))

    with start_peer(net_kernel, ECHO, env=MODES[mode]) as child:
        turns = run(ping_pong, child.location)
        pid = child.proc.proc.pid
        before = cpu_seconds(pid)
        time.sleep(1.0)  # the quiet spell whose CPU use is measured
        idle_cpu = cpu_seconds(pid) - before
    network_turns, core_turns = turns
    assert network_turns > 0  # the loop that reads the links polled between messages
    if mode == "transport thread":
        assert core_turns == 0  # ... and only that one: two would contend for the GIL
    assert idle_cpu < 0.25  # a spinning loop would have used the whole second


def test_the_default_window_is_short() -> None:
    # the window is what an idle process may spend after its last message
    assert 0 < idle_spin.DEFAULT_SPIN_US <= 1000
