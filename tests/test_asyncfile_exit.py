"""Waiting for a child's exit without blocking the loop: pidfd and polling (childexit)."""

from __future__ import annotations

import os
import subprocess
from typing import Any

import pytest

from discoro.core.childexit import exited
from discoro.core.coro import Coro

PIPE = subprocess.PIPE


@pytest.fixture(params=["pidfd", "polling"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "pidfd":
        if not hasattr(os, "pidfd_open"):
            pytest.skip("no pidfd_open on this platform")  # the polling case still runs
    else:
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    return request.param


def test_waits_for_a_running_child_while_the_loop_runs(way: str) -> None:
    proc = subprocess.Popen(["sh", "-c", "read line; exit 7"], stdin=PIPE)
    assert proc.stdin is not None
    ticks: list[int] = []

    async def ticker(coro: Any = None) -> None:
        coro.set_daemon()
        while True:
            ticks.append(1)
            await coro.sleep(0.01)

    async def body(coro: Any = None) -> tuple[int, int | None]:
        Coro(ticker)
        waiting = Coro(waiter)
        while len(ticks) < 3:  # the loop keeps running other coroutines meanwhile
            await coro.sleep(0.01)
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        return await waiting.finish(), proc.returncode

    async def waiter(coro: Any = None) -> int:
        return await exited(proc)

    try:
        assert Coro(body).value(timeout=20) == (7, 7)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_an_exited_child_is_reaped_at_once(way: str) -> None:
    proc = subprocess.Popen(["sh", "-c", "exit 3"])
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
    assert proc.returncode is None

    def body(coro: Any = None) -> Any:
        return (yield exited(proc))

    assert Coro(body).value(timeout=20) == 3
    assert proc.returncode == 3 and proc.wait(timeout=0) == 3
