"""Waiting for a child process to exit without blocking the loop (for `AsyncPipe`).

`exited(proc)` returns ``proc``'s exit status once it has ended and been reaped by ``proc``
itself (so ``proc.poll()``/``proc.returncode`` give the status afterwards).

Invariants:
- The loop never blocks: on Linux the wait is a pidfd watched with ``add_reader`` (readable
  once the process has exited); elsewhere, or if a pidfd cannot be had, ``poll()`` is tried
  on a timer that backs off from 1 ms to 50 ms.
- The pidfd is closed and unwatched however the wait ends (also when the waiting coroutine
  is terminated or cancelled).
- Reaping is ``Popen.poll``'s, never ``os.waitpid`` of ours, so the ``Popen`` object keeps
  its status and a later ``wait()`` on it returns at once.
"""

from __future__ import annotations

import asyncio
import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess

_FIRST_DELAY, _LONGEST_DELAY = 0.001, 0.05


async def _pidfd_readable(pid: int) -> bool:
    """Wait until process ``pid`` has exited: False if no pidfd could be opened for it."""
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return False
    try:
        pidfd = opener(pid)
    except OSError:  # already reaped, or no pidfd support in this kernel
        return False
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()

    def settle() -> None:
        if not future.done():
            future.set_result(None)

    loop.add_reader(pidfd, settle)
    try:
        await future
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return True


async def exited(proc: subprocess.Popen[bytes]) -> int:
    """``proc``'s exit status, waiting (without blocking the loop) until it has one."""
    delay = _FIRST_DELAY
    while (status := proc.poll()) is None:
        if not await _pidfd_readable(proc.pid):
            await asyncio.sleep(delay)
            delay = min(delay * 2, _LONGEST_DELAY)
    return status
