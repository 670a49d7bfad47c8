"""CategorizeMessages (reference 1.8), in both coroutine styles."""

from __future__ import annotations

from typing import Any

import pytest

from discoro.core.categorize import CategorizeMessages
from discoro.core.coro import Coro


def run(target: Any, *args: Any) -> Any:
    return Coro(target, *args).value(timeout=5)


def by_type(msg: Any) -> Any:
    return type(msg).__name__ if isinstance(msg, int | str) else None


def tuples(msg: Any) -> Any:
    return msg[0] if isinstance(msg, tuple) else None


def small_ints(msg: Any) -> Any:
    return "small" if isinstance(msg, int) and msg < 10 else None


def test_receive_by_category_generator() -> None:
    def body(coro=None):
        cat = CategorizeMessages(coro)
        cat.add(by_type)
        cat.add(tuples)
        for msg in [1, "a", ("t", 1), 2.5, "b", 2, ("u", 0), 3.5]:
            coro.send(msg)
        got = [
            (yield cat.receive("str")),
            (yield cat.receive("int")),
            (yield cat.receive()),  # uncategorised
            (yield cat.receive("u")),
            (yield cat.receive("str")),
            (yield cat.receive("t")),
            (yield cat.receive("int")),
            (yield cat.receive(None)),
        ]
        return got

    assert run(body) == ["a", 1, 2.5, ("u", 0), "b", ("t", 1), 2, 3.5]


def test_receive_by_category_async() -> None:
    async def body(coro=None):
        cat = CategorizeMessages(coro)
        cat.add(tuples)
        for msg in [("x", 1), "plain", ("y", 2), ("x", 3)]:
            coro.send(msg)
        return [
            await cat.receive("y"),
            await cat.receive("x"),
            await cat.receive(),
            await cat.receive("x"),
        ]

    assert run(body) == [("y", 2), ("x", 1), "plain", ("x", 3)]


def test_most_recent_categorizer_first_and_remove() -> None:
    async def body(coro=None):
        cat = CategorizeMessages(coro)
        cat.add(by_type)
        cat.add(small_ints)  # tried before by_type
        coro.send(5)
        coro.send(50)
        first = [await cat.receive("small"), await cat.receive("int")]
        cat.remove(small_ints)
        cat.remove(small_ints)  # not there any more: no effect
        coro.send(6)
        return first, await cat.receive("int"), cat.category(7)

    assert run(body) == ([5, 50], 6, "int")


@pytest.mark.parametrize("style", ["generator", "async"])
def test_waits_for_a_message_of_the_category(style: str) -> None:
    def gen_receiver(main, coro=None):
        cat = CategorizeMessages(coro)
        cat.add(tuples)
        main.send("ready")
        wanted = yield cat.receive("go")
        other = yield cat.receive("noise")
        return wanted, other

    async def async_receiver(main, coro=None):
        cat = CategorizeMessages(coro)
        cat.add(tuples)
        main.send("ready")
        return await cat.receive("go"), await cat.receive("noise")

    receiver = gen_receiver if style == "generator" else async_receiver

    async def main(coro=None):
        r = Coro(receiver, coro)
        await coro.receive()
        r.send(("noise", 1))
        r.send(("go", 2))
        return await r.finish()

    assert run(main) == (("go", 2), ("noise", 1))


def test_timeout_returns_alarm_value_and_keeps_others() -> None:
    def gen_body(coro=None):
        cat = CategorizeMessages(coro)
        cat.add(tuples)
        coro.send(("a", 1))
        missing = yield cat.receive("b", timeout=0.02, alarm_value="alarm")
        now = yield cat.receive("b", timeout=0)
        kept = yield cat.receive("a", timeout=0)
        return missing, now, kept

    async def async_body(coro=None):
        cat = CategorizeMessages(coro)
        coro.send("x")
        return (
            await cat.receive("nothing", timeout=0, alarm_value=-1),
            await cat.receive(timeout=0.01),
        )

    assert run(gen_body) == ("alarm", None, ("a", 1))
    assert run(async_body) == (-1, "x")


def test_needs_a_coro() -> None:
    with pytest.raises(TypeError):
        CategorizeMessages("nope")  # type: ignore[arg-type]
