"""AsyncThreadPool and AsyncDBCursor (reference 1.12), in both coroutine styles."""

from __future__ import annotations

import sqlite3
import threading
from typing import TYPE_CHECKING, Any

import pytest

from discoro.core.coro import Coro
from discoro.core.threadpool import AsyncDBCursor, AsyncThreadPool
from discoro.errors import ShutdownError, WrongThreadError

if TYPE_CHECKING:
    from collections.abc import Iterator


def run(target: Any, *args: Any) -> Any:
    return Coro(target, *args).value(timeout=5)


@pytest.fixture
def pool() -> Iterator[AsyncThreadPool]:
    pool = AsyncThreadPool(2)
    yield pool
    pool.terminate()


def add(a: int, b: int = 0) -> tuple[int, str]:
    return a + b, threading.current_thread().name


def fail(text: str) -> None:
    raise ValueError(text)


def test_async_task_result_and_error_generator(pool: AsyncThreadPool) -> None:
    def body(coro=None):
        total, thread = yield pool.async_task(add, 2, b=3)
        try:
            yield pool.async_task(fail, "bad")
        except ValueError as exc:
            error = str(exc)
        return total, thread, error

    total, thread, error = run(body)
    assert (total, error) == (5, "bad")
    assert thread.startswith("discoro-pool-")


def test_async_task_result_and_error_async(pool: AsyncThreadPool) -> None:
    async def body(coro=None):
        total, thread = await pool.async_task(add, 4, 5)
        with pytest.raises(ValueError, match="worse"):
            await pool.async_task(fail, "worse")
        return total, thread

    total, thread = run(body)
    assert total == 9
    assert thread != threading.current_thread().name


def test_tasks_run_in_parallel(pool: AsyncThreadPool) -> None:
    barrier = threading.Barrier(2, timeout=5)  # passes only if both tasks run at once

    def gen_user(coro=None):
        return (yield pool.async_task(barrier.wait))

    async def async_user(coro=None):
        return await pool.async_task(barrier.wait)

    a, b = Coro(gen_user), Coro(async_user)
    assert sorted([a.value(timeout=5), b.value(timeout=5)]) == [0, 1]


def test_other_coroutines_run_while_a_task_blocks(pool: AsyncThreadPool) -> None:
    release = threading.Event()

    def blocked(coro=None):
        return (yield pool.async_task(release.wait, 5))

    async def free(coro=None):
        return "not blocked"

    waiting = Coro(blocked)
    assert Coro(free).value(timeout=5) == "not blocked"
    release.set()
    assert waiting.value(timeout=5) is True


def test_terminated_coroutine_drops_result(pool: AsyncThreadPool) -> None:
    started, release = threading.Event(), threading.Event()

    def task() -> str:
        started.set()
        release.wait(5)
        return "late"

    async def body(coro=None):
        return await pool.async_task(task)

    coro = Coro(body)
    assert started.wait(5)
    coro.terminate()
    assert coro.value(timeout=5) is None
    release.set()
    pool.join(timeout=5)


def test_terminate_fails_queued_tasks_and_refuses_new_ones() -> None:
    pool = AsyncThreadPool(1)
    started, release = threading.Event(), threading.Event()

    def hold() -> str:
        started.set()
        release.wait(5)
        return "held"

    def first(coro=None):
        return (yield pool.async_task(hold))

    async def second(coro=None):
        try:
            return await pool.async_task(add, 1)
        except ShutdownError:
            return "failed"

    a = Coro(first)
    assert started.wait(5)
    b = Coro(second)

    async def queued(coro=None):  # runs after `second` has queued its task
        return None

    Coro(queued).value(timeout=5)
    pool.terminate()
    release.set()
    assert a.value(timeout=5) == "held"  # a running task still finishes
    assert b.value(timeout=5) == "failed"

    async def late(coro=None):
        with pytest.raises(ShutdownError):
            await pool.async_task(add, 1)
        return True

    assert run(late)


def test_join_waits_for_queued_tasks() -> None:
    pool = AsyncThreadPool(1)
    done: list[int] = []

    def record(i: int) -> None:
        done.append(i)

    async def body(coro=None):
        for i in range(3):
            await pool.async_task(record, i)

    run(body)

    def gen_body(coro=None):
        yield pool.async_task(record, 3)

    run(gen_body)
    pool.join(timeout=5)
    assert done == [0, 1, 2, 3]

    async def on_loop(coro=None):
        with pytest.raises(WrongThreadError):
            pool.join()
        return True

    assert run(on_loop)


def test_bad_size() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        AsyncThreadPool(0)


# -- AsyncDBCursor ----------------------------------------------------------------------------


@pytest.fixture
def cursor(pool: AsyncThreadPool) -> Iterator[AsyncDBCursor]:
    connection = sqlite3.connect(":memory:", check_same_thread=False)
    yield AsyncDBCursor(pool, connection.cursor())
    connection.close()


def test_db_cursor_generator(cursor: AsyncDBCursor) -> None:
    def body(coro=None):
        yield cursor.execute("create table t (k integer, v text)")
        yield cursor.executemany("insert into t values (?, ?)", [(1, "a"), (2, "b")])
        yield cursor.execute("select v from t where k > ? order by k", (0,))
        rows = cursor.fetchall()  # delegated to the sqlite3 cursor
        try:
            yield cursor.callproc("nothing")  # sqlite3 cursors have no callproc
        except AttributeError:
            missing = True
        return rows, cursor.rowcount, missing

    assert run(body) == ([("a",), ("b",)], -1, True)


def test_db_cursor_async(cursor: AsyncDBCursor) -> None:
    async def body(coro=None):
        await cursor.execute("create table t (k integer)")
        await cursor.executemany("insert into t values (?)", [(i,) for i in range(5)])
        await cursor.execute("select count(*) from t")
        return cursor.fetchone()

    assert run(body) == (5,)


class SlowCursor:
    """A DB-API-like cursor that records how many calls overlap."""

    def __init__(self) -> None:
        self.active = 0
        self.most = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls: list[str] = []

    def execute(self, query: str) -> None:
        self.active += 1
        self.most = max(self.most, self.active)
        self.calls.append(query)
        self.entered.set()
        self.release.wait(5)
        self.active -= 1


def test_db_cursor_calls_are_serialised(pool: AsyncThreadPool) -> None:
    raw = SlowCursor()
    cursor = AsyncDBCursor(pool, raw)

    def gen_user(coro=None):
        yield cursor.execute("one")

    trying = threading.Event()

    async def async_user(coro=None):
        trying.set()  # the loop runs on into execute() before "one" can report back
        await cursor.execute("two")

    a = Coro(gen_user)
    assert raw.entered.wait(5)
    b = Coro(async_user)  # queued behind "one" although the pool has a free thread
    assert trying.wait(5)
    raw.release.set()
    a.value(timeout=5)
    b.value(timeout=5)
    assert raw.most == 1
    assert raw.calls == ["one", "two"]
