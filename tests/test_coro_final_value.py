"""The final value of a coroutine (reference 1.4): ``return v``, the last received value when
it ends without one, ``raise StopIteration(...)`` from old code (PEP 479 turns it into a
RuntimeError), in nested callees too, and a StopIteration from a helper is an error."""

from __future__ import annotations

import queue

import pytest

from discoro import Coro, MonitorException

TIMEOUT = 10


def run_with_monitor(target, *args, messages=()):
    """Run ``target``, send it ``messages``; return (value(), what its monitor saw)."""
    box: queue.Queue = queue.Queue()

    def watcher(coro=None):
        box.put((yield coro.receive()))

    w = Coro(watcher)
    c = Coro(target, *args)
    c.notify(w)
    for message in messages:
        c.send(message)
    value = c.value(TIMEOUT)
    w.value(TIMEOUT)
    exc = box.get_nowait()
    assert isinstance(exc, MonitorException)
    assert exc.args[0] is c
    return value, exc.args[1]


def finishes_with(target, *args, messages=()):
    """The final value, checked to be the same for value(), finish() and the monitor."""
    value, info = run_with_monitor(target, *args, messages=messages)
    assert info[0] is StopIteration, info
    assert info[1] == value
    return value


# -- return ------------------------------------------------------------------------------


def test_return_value():
    def gen(coro=None):
        yield coro.receive()
        return "returned"

    assert finishes_with(gen, messages=["m"]) == "returned"


@pytest.mark.parametrize("value", [(1, 2), [3, 4], 0, "", False])
def test_return_of_falsy_and_compound_values(value):
    def gen(coro=None):
        yield "something else"
        return value

    assert finishes_with(gen) == value


def test_bare_return_gives_the_last_received_value():
    def gen(coro=None):
        yield coro.receive()
        yield coro.receive()
        return

    assert finishes_with(gen, messages=["first", "last"]) == "last"


def test_return_none_gives_the_last_received_value():
    def gen(coro=None):
        yield coro.receive()
        return None

    assert finishes_with(gen, messages=["the message"]) == "the message"


def test_falling_off_the_end_gives_the_last_yielded_plain_value():
    def gen(coro=None):
        alg, digest = "sha1", "abc"
        yield coro.receive()
        yield (alg, digest)

    assert finishes_with(gen, messages=["ignored"]) == ("sha1", "abc")


def test_the_last_value_can_be_a_timeout_alarm():
    def gen(coro=None):
        yield coro.receive(timeout=0.01, alarm_value="alarm")

    assert finishes_with(gen) == "alarm"


def test_the_last_value_can_be_a_nested_call_result():
    def helper(coro):
        yield
        return 7

    def gen(coro=None):
        yield helper(coro)

    assert finishes_with(gen) == 7


def test_the_last_value_can_be_another_coroutines_final_value():
    def other(coro=None):
        yield
        return "other's value"

    def gen(coro=None):
        yield Coro(other).finish()

    assert finishes_with(gen) == "other's value"


def test_a_coroutine_that_never_yields_ends_with_none():
    def gen(coro=None):
        if False:
            yield
        return

    assert finishes_with(gen) is None


# -- raise StopIteration(...) from old code ----------------------------------------------


def test_raise_stop_iteration_with_one_argument():
    def gen(coro=None):
        yield coro.receive()
        raise StopIteration("legacy")

    assert finishes_with(gen, messages=["m"]) == "legacy"


def test_raise_stop_iteration_with_several_arguments_gives_a_tuple():
    def gen(coro=None):
        out = yield "out"
        err = yield "err"
        raise StopIteration(out, err)

    assert finishes_with(gen) == ("out", "err")


def test_raise_stop_iteration_with_a_tuple_argument():
    def gen(coro=None):
        yield
        raise StopIteration((1, 2))

    assert finishes_with(gen) == (1, 2)


@pytest.mark.parametrize("bare", [True, False])
def test_raise_stop_iteration_without_arguments_gives_the_last_received_value(bare):
    def gen(coro=None):
        yield coro.receive()
        if bare:
            raise StopIteration
        raise StopIteration()

    assert finishes_with(gen, messages=["last"]) == "last"


def test_raise_stop_iteration_none_gives_none():
    def gen(coro=None):
        yield coro.receive()
        raise StopIteration(None)

    assert finishes_with(gen, messages=["m"]) is None


def test_raise_stop_iteration_inside_try_finally():
    cleaned = []

    def gen(coro=None):
        try:
            yield
            raise StopIteration("from try")
        finally:
            cleaned.append(True)

    assert finishes_with(gen) == "from try"
    assert cleaned == [True]


# -- nested callees -----------------------------------------------------------------------


def test_nested_callee_return_and_bare_return():
    def returns(coro):
        yield
        return "explicit"

    def bare(coro):
        yield coro.receive()

    def gen(coro=None):
        a = yield returns(coro)
        b = yield bare(coro)
        return a, b

    assert finishes_with(gen, messages=["callee's message"]) == ("explicit", "callee's message")


def test_nested_callee_bare_return_uses_its_own_last_value_not_the_callers():
    def callee(coro):
        if False:
            yield
        return

    def gen(coro=None):
        yield "caller's value"
        return (yield callee(coro))

    assert finishes_with(gen) is None


def test_nested_callee_raise_stop_iteration():
    def one(coro):
        yield
        raise StopIteration("one")

    def two(coro):
        yield
        raise StopIteration("a", "b")

    def deeper(coro):
        return (yield two(coro))

    def gen(coro=None):
        return (yield one(coro)), (yield deeper(coro))

    assert finishes_with(gen) == ("one", ("a", "b"))


def test_raise_stop_iteration_in_the_innermost_of_several_levels():
    def level(n, coro):
        if n == 0:
            yield coro.receive()
            raise StopIteration("from the bottom")
        result = yield level(n - 1, coro)
        return ("up", result)

    def gen(coro=None):
        return (yield level(3, coro))

    assert finishes_with(gen, messages=["m"]) == ("up", ("up", ("up", "from the bottom")))


# -- a StopIteration from a helper function is an error, not a return ---------------------


def helper_that_raises():
    raise StopIteration("from a helper")


def deeper_helper():
    helper_that_raises()


@pytest.mark.parametrize("helper", [helper_that_raises, deeper_helper])
def test_stop_iteration_from_a_helper_function_is_not_a_return(helper):
    def gen(coro=None):
        yield
        helper()
        return "not reached"

    _, info = run_with_monitor(gen)
    assert info[0] is RuntimeError
    assert isinstance(info[1].__cause__, StopIteration)


def test_stop_iteration_from_a_helper_inside_a_callee_reaches_the_caller_as_an_error():
    def callee(coro):
        yield
        deeper_helper()
        return "not reached"

    def gen(coro=None):
        try:
            yield callee(coro)
        except RuntimeError as exc:
            return ("caller caught", type(exc.__cause__).__name__)
        return "no error"

    assert finishes_with(gen) == ("caller caught", "StopIteration")


def test_a_caught_stop_iteration_inside_the_coroutine_is_harmless():
    def gen(coro=None):
        yield
        try:
            helper_that_raises()
        except StopIteration as exc:
            got = exc.args[0]
        return ("went on", got)

    assert finishes_with(gen) == ("went on", "from a helper")


# -- async coroutines ---------------------------------------------------------------------


def test_async_return_value():
    async def afunc(coro=None):
        await coro.receive()
        return ("async", 1)

    assert finishes_with(afunc, messages=["m"]) == ("async", 1)


def test_async_return_none():
    async def afunc(coro=None):
        await coro.receive()

    assert finishes_with(afunc, messages=["m"]) is None


@pytest.mark.parametrize(("args", "expected"), [(("v",), "v"), (("a", "b"), ("a", "b"))])
def test_async_raise_stop_iteration(args, expected):
    async def afunc(coro=None):
        await coro.receive()
        raise StopIteration(*args)

    assert finishes_with(afunc, messages=["m"]) == expected


def test_async_stop_iteration_from_a_helper_is_an_error():
    async def afunc(coro=None):
        deeper_helper()

    _, info = run_with_monitor(afunc)
    assert info[0] is RuntimeError


# -- finish() and value() agree -----------------------------------------------------------


def test_finish_from_another_coroutine_and_value_from_a_thread_agree():
    def target(coro=None):
        yield coro.receive()
        raise StopIteration("x", "y")

    def waiter(other, coro=None):
        return ("finish", (yield other.finish()))

    async def async_waiter(other, coro=None):
        return ("finish", await other.finish())

    t = Coro(target)
    w1 = Coro(waiter, t)
    w2 = Coro(async_waiter, t)
    t.send("go")
    assert t.value(TIMEOUT) == ("x", "y")
    assert w1.value(TIMEOUT) == ("finish", ("x", "y"))
    assert w2.value(TIMEOUT) == ("finish", ("x", "y"))
    # and once more, after the end
    assert Coro(waiter, t).value(TIMEOUT) == ("finish", ("x", "y"))
