"""Turning a function into a coroutine (reference 1.2): targets, the ``coro`` argument,
thread-style ``args=``/``kwargs=``, name, id and string form, in both coroutine styles."""

from __future__ import annotations

import queue
import re

import pytest

from discoro import AsynCoro, Coro
from discoro.errors import NotACoroutineFunction

TIMEOUT = 10


# -- the coro=None injection -------------------------------------------------------------


def gen_positional(x, coro=None):
    yield
    return (x, coro)


async def async_positional(x, coro=None):
    return (x, coro)


def gen_keyword_only(x, *, coro=None):
    yield
    return (x, coro)


async def async_keyword_only(x, *, coro=None):
    return (x, coro)


@pytest.mark.parametrize(
    "target", [gen_positional, async_positional, gen_keyword_only, async_keyword_only]
)
def test_coro_argument_with_default_is_the_new_coroutine(target):
    c = Coro(target, 7)
    x, got = c.value(TIMEOUT)
    assert x == 7
    assert got is c


@pytest.mark.parametrize("target", [gen_positional, async_positional])
def test_coro_argument_overrides_what_the_caller_passed(target):
    c = Coro(target, 1, coro="caller's value")
    assert c.value(TIMEOUT)[1] is c


def gen_coro_without_default(coro):
    yield
    return coro


async def async_coro_without_default(coro):
    return coro


@pytest.mark.parametrize("target", [gen_coro_without_default, async_coro_without_default])
def test_coro_parameter_without_default_is_an_ordinary_argument(target):
    assert Coro(target, "plain").value(TIMEOUT) == "plain"


def gen_no_coro(a, b=2):
    yield
    return a + b


async def async_no_coro(a, b=2):
    return a + b


@pytest.mark.parametrize("target", [gen_no_coro, async_no_coro])
def test_target_without_coro_parameter_gets_only_its_arguments(target):
    assert Coro(target, 1, b=10).value(TIMEOUT) == 11


class Worker:
    def __init__(self, base):
        self.base = base

    def gen_method(self, n, coro=None):
        yield
        return (self.base + n, coro)

    async def async_method(self, n, coro=None):
        return (self.base + n, coro)


@pytest.mark.parametrize("method", ["gen_method", "async_method"])
def test_bound_method_target(method):
    bound = getattr(Worker(100), method)
    c = Coro(bound, 5)
    assert c.name == method
    total, got = c.value(TIMEOUT)
    assert total == 105
    assert got is c


# -- thread-style args= / kwargs= ---------------------------------------------------------


def gen_three(a, b, c=0, coro=None):
    yield
    return (a, b, c, coro is not None)


async def async_three(a, b, c=0, coro=None):
    return (a, b, c, coro is not None)


@pytest.mark.parametrize("target", [gen_three, async_three])
def test_thread_style_args_and_kwargs(target):
    c = Coro(target, args=(1, 2), kwargs={"c": 3})
    assert c.value(TIMEOUT) == (1, 2, 3, True)


@pytest.mark.parametrize("target", [gen_three, async_three])
def test_thread_style_args_only(target):
    assert Coro(target, args=(4, 5)).value(TIMEOUT) == (4, 5, 0, True)


def gen_takes_args_keyword(args=None, coro=None):
    yield
    return args


def test_a_target_with_its_own_args_parameter_gets_it_literally():
    assert Coro(gen_takes_args_keyword, args=(1, 2)).value(TIMEOUT) == (1, 2)


def test_positional_args_disable_the_thread_style_form():
    def gen(a, args=None, coro=None):
        yield
        return (a, args)

    assert Coro(gen, 1, args=(9,)).value(TIMEOUT) == (1, (9,))


def test_wrong_arguments_fail_at_construction():
    with pytest.raises(TypeError):
        Coro(gen_three, 1)


# -- scheduling, name, id, string form ---------------------------------------------------


def test_a_new_coroutine_is_scheduled_immediately():
    started: queue.Queue = queue.Queue()

    def gen(coro=None):
        started.put(coro)
        yield

    async def afunc(coro=None):
        started.put(coro)

    for target in (gen, afunc):
        c = Coro(target)
        assert started.get(timeout=TIMEOUT) is c


@pytest.mark.parametrize("target", [gen_no_coro, async_no_coro])
def test_name_is_the_function_name(target):
    c = Coro(target, 1)
    assert c.name == target.__name__
    c.value(TIMEOUT)


@pytest.mark.parametrize("target", [gen_no_coro, async_no_coro])
def test_string_form_is_name_slash_id(target):
    c = Coro(target, 1)
    match = re.fullmatch(rf"{target.__name__}/(\d+)(@.+)?", str(c))
    assert match is not None, str(c)
    kernel_location = AsynCoro.instance().location
    if kernel_location is None:  # a purely local process
        assert match.group(2) is None
        assert c.location is None
    else:  # another test started networking in this process
        assert match.group(2) == f"@{kernel_location}"
        assert c.location == kernel_location
    c.value(TIMEOUT)


def test_ids_are_unique_integers():
    coros = [Coro(gen_no_coro, i) for i in range(200)]
    # "name/id", or "name/id@addr:port" once the process is on a network
    ids = [int(str(c).rsplit("/", 1)[1].split("@")[0]) for c in coros]
    assert len(set(ids)) == len(ids)
    for c in coros:
        c.value(TIMEOUT)


def test_name_and_id_are_kept_after_the_end():
    c = Coro(gen_no_coro, 1)
    before = str(c)
    c.value(TIMEOUT)
    assert str(c) == before
    assert c.name == "gen_no_coro"


# -- wrong targets ------------------------------------------------------------------------


def plain_function(coro=None):
    return 1


class NotAFunction:
    def __init__(self, coro=None):
        pass


def a_generator_function(coro=None):
    yield


@pytest.mark.parametrize(
    ("target", "named"),
    [
        (plain_function, "plain_function"),
        (lambda coro=None: 1, "<lambda>"),
        (NotAFunction, "NotAFunction"),
        (a_generator_function(), "a_generator_function"),  # a generator object, not a function
        (42, "42"),
    ],
)
def test_wrong_target_fails_at_construction_naming_it(target, named):
    with pytest.raises(NotACoroutineFunction) as info:
        Coro(target)
    assert named in str(info.value)
    assert isinstance(info.value, TypeError)


def test_a_wrong_target_is_never_called():
    calls = []

    def plain(coro=None):
        calls.append(coro)

    with pytest.raises(TypeError):
        Coro(plain)
    assert calls == []
