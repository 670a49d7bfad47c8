"""`AsyncThreadPool` and `AsyncDBCursor`: blocking calls off the loop (reference 1.12).

``yield pool.async_task(fn, *args)`` (or ``await``) runs ``fn`` in one of the pool's worker
threads while the coroutine waits; the coroutine gets ``fn``'s result, or its exception raised
at that point. `AsyncDBCursor` runs a DB-API cursor's ``execute``/``executemany``/``callproc``
that way, one at a time.

Invariants:
- Tasks run in submission order as workers free up. Workers are daemon threads, so a task
  blocked for ever (say, on ``input()``) never keeps the process alive.
- A result is handed back on the loop thread (``call_soon_threadsafe``); if the waiting
  coroutine was terminated meanwhile the result is dropped, and a task not yet started for a
  terminated coroutine is skipped.
- After `join` or `terminate` the pool takes no new tasks (`ShutdownError`); `terminate` fails
  the queued, not yet started tasks with `ShutdownError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any

from discoro.core.conditions import Semaphore
from discoro.core.kernel import AsynCoro
from discoro.errors import ShutdownError, WrongThreadError

_Job = tuple[Callable[[], Any], "asyncio.Future[Any]"]


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(result)
    else:
        future.set_exception(error)


class AsyncThreadPool:
    """``AsyncThreadPool(num_threads)``: run blocking callables for coroutines."""

    def __init__(self, num_threads: int) -> None:
        if num_threads < 1:
            raise ValueError(f"a thread pool needs at least one thread, not {num_threads}")
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False  # no new tasks
        self._stopping = False  # the workers have been told to end
        self._threads = [
            threading.Thread(target=self._work, name=f"discoro-pool-{i}", daemon=True)
            for i in range(num_threads)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def num_threads(self) -> int:
        return len(self._threads)

    async def async_task(self, target: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``target(*args, **kwargs)`` in a worker thread; its result (or exception)."""
        if self._closed:
            raise ShutdownError("the thread pool has been joined or terminated")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._jobs.put((lambda: target(*args, **kwargs), future))
        return await future

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            call, future = job
            if future.done():  # its coroutine was terminated before the task started
                continue
            try:
                result, error = call(), None
            except BaseException as exc:
                result, error = None, exc
            # RuntimeError: the kernel has stopped, and nobody is waiting any more
            with contextlib.suppress(RuntimeError):
                future.get_loop().call_soon_threadsafe(_settle, future, result, error)

    def join(self, timeout: float | None = None) -> None:
        """Take no new tasks, wait until the queued ones are done and the workers have
        ended (from a thread; a coroutine must not block the loop)."""
        kernel = AsynCoro._existing_instance()
        if kernel is not None and kernel.on_loop_thread():
            raise WrongThreadError("AsyncThreadPool.join() blocks: call it from a thread")
        self._stop_workers()
        for thread in self._threads:
            thread.join(timeout)

    def terminate(self) -> None:
        """Take no new tasks, fail the queued ones; running tasks finish in the background."""
        self._closed = True
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                error = ShutdownError("the thread pool was terminated before the task ran")
                with contextlib.suppress(RuntimeError):
                    job[1].get_loop().call_soon_threadsafe(_settle, job[1], None, error)
        self._stop_workers()

    def _stop_workers(self) -> None:
        self._closed = True
        if not self._stopping:
            self._stopping = True
            for _ in self._threads:
                self._jobs.put(None)


class AsyncDBCursor:
    """``AsyncDBCursor(pool, cursor)``: a DB-API cursor whose calls run in ``pool``, one at a
    time; other attributes (``fetchall``, ``rowcount``, ...) are the cursor's own."""

    def __init__(self, pool: AsyncThreadPool, cursor: Any) -> None:
        self._pool = pool
        self._cursor = cursor
        self._turn = Semaphore(1)

    async def _serialised(self, method: str, *args: Any, **kwargs: Any) -> Any:
        async with self._turn:
            return await self._pool.async_task(getattr(self._cursor, method), *args, **kwargs)

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        return await self._serialised("execute", *args, **kwargs)

    async def executemany(self, *args: Any, **kwargs: Any) -> Any:
        return await self._serialised("executemany", *args, **kwargs)

    async def callproc(self, *args: Any, **kwargs: Any) -> Any:
        return await self._serialised("callproc", *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)
