"""Identity of coroutines (reference 1.5): equality and hash, pickling to a reference, and
the local name registry (``register`` / ``unregister`` / ``Coro.locate``)."""

from __future__ import annotations

import pickle
import queue
import threading

import pytest

from discoro import AsynCoro, Coro, serialize, unserialize

TIMEOUT = 10


def waiter(started=None, coro=None):
    """Runs until it gets a message; returns the message."""
    if started is not None:
        started.put(coro)
    return (yield coro.receive())


async def async_waiter(started=None, coro=None):
    if started is not None:
        started.put(coro)
    return await coro.receive()


@pytest.fixture(params=[waiter, async_waiter], ids=["gen", "async"])
def live(request):
    """A running coroutine (it has started) that ends when it gets a message."""
    started: queue.Queue = queue.Queue()
    c = Coro(request.param, started)
    assert started.get(timeout=TIMEOUT) is c
    yield c
    c.send("stop")
    c.value(TIMEOUT)


# -- equality and hash --------------------------------------------------------------------


def test_equality_and_hash(live):
    other = Coro(waiter)
    try:
        assert live == live
        assert live != other
        assert hash(live) == hash(live)
        assert live != str(live)
        assert len({live, live, other}) == 2
    finally:
        other.send(None)
        other.value(TIMEOUT)


# -- pickling -----------------------------------------------------------------------------


def test_pickle_round_trip_gives_back_the_same_local_coroutine(live):
    assert pickle.loads(pickle.dumps(live)) is live
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        assert pickle.loads(pickle.dumps(live, protocol)) is live


def test_serialize_round_trip_inside_a_message(live):
    message = {"reply_to": live, "items": [live, 1, "two"]}
    back = unserialize(serialize(message))
    assert back["reply_to"] is live
    assert back["items"][0] is live
    assert back["items"][1:] == [1, "two"]


def test_an_unpickled_coroutine_works(live):
    handle = unserialize(serialize(live))
    assert handle.send("via the copy") == 0
    assert live.value(TIMEOUT) == "via the copy"


def test_pickle_round_trip_right_after_construction_from_a_thread():
    loop = AsynCoro.instance().loop
    entered, release = threading.Event(), threading.Event()

    def hold_the_loop():
        entered.set()
        release.wait(TIMEOUT)

    loop.call_soon_threadsafe(hold_the_loop)
    assert entered.wait(TIMEOUT)
    try:
        c = Coro(waiter)
        back = unserialize(serialize(c))
    finally:
        release.set()
    try:
        assert back is c
    finally:
        c.send(None)
        c.value(TIMEOUT)


def test_the_pickle_is_a_reference_not_the_state(live):
    data = pickle.dumps(live)
    assert b"receive" not in data  # no generator / code in it
    assert len(data) < 300


def test_reference_to_an_ended_coroutine():
    c = Coro(waiter)
    c.send("done")
    assert c.value(TIMEOUT) == "done"
    back = unserialize(serialize(c))
    assert back == c
    assert hash(back) == hash(c)
    assert str(back) == str(c)
    assert back.send("too late") == -1


def test_serialize_uses_the_highest_pickle_protocol():
    data = serialize({"a": [1, 2.5, None]})
    assert data[:2] == b"\x80" + bytes([pickle.HIGHEST_PROTOCOL])
    assert unserialize(data) == {"a": [1, 2.5, None]}


# -- the name registry --------------------------------------------------------------------


@pytest.fixture
def local_only(monkeypatch):
    """Keep the shared kernel local: registering must not start networking in this process."""
    if not AsynCoro.instance().network_started:
        monkeypatch.setattr(AsynCoro, "_network_factory", None)


def finder(names, results, coro=None):
    for name in names:
        results.put((yield Coro.locate(name)))


async def async_finder(names, results, coro=None):
    for name in names:
        results.put(await Coro.locate(name))


@pytest.mark.parametrize("find", [finder, async_finder], ids=["gen", "async"])
def test_register_and_locate_locally(local_only, live, find):
    assert live.register("test-identity-a") == 0
    assert live.register() == 0  # default name: the coroutine's name
    results: queue.Queue = queue.Queue()
    Coro(find, ["test-identity-a", live.name], results).value(TIMEOUT)
    assert results.get_nowait() is live
    assert results.get_nowait() is live
    assert live.unregister("test-identity-a") == 0
    assert live.unregister() == 0
    assert AsynCoro.instance().registered("test-identity-a") is None


def test_a_name_held_by_a_live_coroutine_is_refused(local_only, live):
    other = Coro(waiter)
    try:
        assert live.register("test-identity-b") == 0
        assert live.register("test-identity-b") == 0  # the holder may register again
        assert other.register("test-identity-b") == -1
        assert AsynCoro.instance().registered("test-identity-b") is live
        assert other.unregister("test-identity-b") == -1  # not its name
        assert live.unregister("test-identity-b") == 0
        assert live.unregister("test-identity-b") == -1
        assert other.register("test-identity-b") == 0
        assert other.unregister("test-identity-b") == 0
    finally:
        other.send(None)
        other.value(TIMEOUT)


def test_the_name_of_an_ended_coroutine_is_free(local_only):
    first = Coro(waiter)
    assert first.register("test-identity-c") == 0
    first.send(None)
    first.value(TIMEOUT)
    assert AsynCoro.instance().registered("test-identity-c") is None
    second = Coro(waiter)
    try:
        assert second.register("test-identity-c") == 0
        assert AsynCoro.instance().registered("test-identity-c") is second
    finally:
        second.unregister("test-identity-c")
        second.send(None)
        second.value(TIMEOUT)
