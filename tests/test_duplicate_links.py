"""Duplicate links (`net.link_ops`): a second link to a peer that authenticates while the
first is up retires on both sides and closes, losing nothing sent around it; pings on a
link that is not (or no longer) current are answered on that link, so it is never judged
silent; and dials that overlap (discovery and a `locate`, say) share one link."""

from __future__ import annotations

import asyncio
import gc
import logging
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pytest

from discoro import AsynCoro, Coro
from discoro.net import flow, link_ops
from discoro.net.dialling import dial
from discoro.net.link import Link
from discoro.net.runtime import network_of
from netpeers import Child, run, start_peer

if TYPE_CHECKING:
    from collections.abc import Iterator

    from discoro.net.location import Location
    from discoro.net.network import Network

pytestmark = pytest.mark.timeout(60)

PROGRAM = """
    import gc
    import os
    import time
    from discoro.net import link_ops
    from discoro.net.link import Link
    from discoro.net.runtime import network_of

    network = network_of(kernel)
    network.ping_interval = float(os.environ["PING_INTERVAL"])
    if os.environ.get("NEVER_RETIRE"):
        async def never(link):
            return None
        link_ops._say_retired = never
    link_ops.RETIRED_WAIT = float(os.environ.get("RETIRED_WAIT", link_ops.RETIRED_WAIT))

    def open_links():
        return sum(
            1 for o in gc.get_objects()
            if isinstance(o, Link) and o.peer is not None and o.transport is not None
            and not o.transport.is_closing()
        )

    slow = float(os.environ.get("SLOW_SECONDS", "0"))  # per message: blocks the loop, reads too

    def counter(coro=None):
        expected = 0
        while True:
            message = yield coro.receive()
            if slow:
                time.sleep(slow)
            if message == "links":
                print("LINKS", open_links(), flush=True)
                continue
            if type(message) is tuple:  # (number, padding)
                message = message[0]
            if message == expected:
                expected += 1
                if expected % 100 == 0:
                    print("IN ORDER", expected, flush=True)
            else:
                print("OUT OF ORDER", message, expected, flush=True)

    assert Coro(counter).register("counter") == 0
"""


def links_to(location: Location) -> list[Link]:
    """This process's authenticated links to ``location`` that are still open."""
    return [
        o
        for o in gc.get_objects()
        if isinstance(o, Link)
        and o.peer is not None
        and getattr(o.peer, "location", None) == location  # other tests' links: any peer
        and o.transport is not None
        and not o.transport.is_closing()
    ]


def on_network(network: Network, awaitable: Any, timeout: float = 20) -> Any:
    return asyncio.run_coroutine_threadsafe(awaitable, network.loop).result(timeout)


def dial_twice(network: Network, location: Location) -> Any:
    async def twice() -> Any:  # the network's own dial, twice at once: a duplicate link
        return await asyncio.gather(dial(network, location), dial(network, location))

    return on_network(network, twice())


def send_numbers(location: Location, start: int, count: int) -> None:
    def main(coro: Any = None) -> Any:
        counter = yield Coro.locate("counter", location, timeout=10)
        for number in range(start, start + count):
            counter.send(number)
        counter.send("links")

    run(main, timeout=30)


def test_a_duplicate_link_retires_on_both_sides_and_closes_losing_nothing(
    net_kernel: AsynCoro, caplog: pytest.LogCaptureFixture
) -> None:
    network = network_of(net_kernel)
    with start_peer(net_kernel, PROGRAM, env={"PING_INTERVAL": "1.0"}) as child:
        send_numbers(child.location, 0, 100)  # over the first link
        child.expect(r"^IN ORDER 100$")
        assert child.expect(r"^LINKS (\d+)$")[1] == "1"

        assert dial_twice(network, child.location) == [True, True]
        send_numbers(child.location, 100, 100)  # while the duplicates are sorted out
        child.expect(r"^IN ORDER 200$")

        retiring = [link for link in links_to(child.location) if link.retiring]
        for link in retiring:  # closed by the protocol, not by silence
            on_network(network, asyncio.wait_for(asyncio.shield(link.lost), 10))
        assert not [link for link in retiring if link.died_silent]
        assert links_to(child.location) == [network.peers[child.location].link]

        send_numbers(child.location, 200, 100)
        child.expect(r"^IN ORDER 300$")
        assert child.expect(r"^LINKS (\d+)$")[1] == "1"
    assert not [line for line in child.proc.output if "OUT OF ORDER" in line or "silent" in line]
    stopped = [r.message for r in caplog.records if r.levelno >= logging.WARNING]
    assert not stopped, stopped  # the child's exit is no "local link failed" to warn about


def test_a_link_that_is_not_current_is_answered_on_itself_and_stays_up(
    net_kernel: AsynCoro, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Neither side says it retired the duplicate (patched), so it stays open and idle: both
    sides ping it when it is silent, and each ping must be answered on it."""

    async def never(link: Link) -> None:
        return None

    network = network_of(net_kernel)
    env = {"PING_INTERVAL": "0.1", "NEVER_RETIRE": "1"}
    with start_peer(net_kernel, PROGRAM, env=env) as child:
        monkeypatch.setattr(link_ops, "_say_retired", never)
        monkeypatch.setattr(network, "ping_interval", 0.1)
        assert dial_twice(network, child.location) == [True, True]
        duplicates = [link for link in links_to(child.location) if link.retiring]
        assert len(duplicates) >= 1
        # the pings must be answered for longer than the dead time (5 intervals, 0.5 s): a
        # window of four dead times, on a link nothing else uses
        deadline = 4 * network.ping_interval * network.dead_after
        on_network(network, asyncio.sleep(deadline))
        assert [link for link in duplicates if link.lost.done()] == []
        for link in duplicates:
            link.close()
    assert not [line for line in child.proc.output if "silent" in line]


def test_overlapping_dials_to_one_peer_make_one_link(
    net_kernel: AsynCoro, monkeypatch: pytest.MonkeyPatch
) -> None:
    network = network_of(net_kernel)
    dials: list[Location] = []
    real_dial = network._dial

    async def counted(location: Location) -> bool:
        dials.append(location)
        return await real_dial(location)

    monkeypatch.setattr(network, "_dial", counted)
    with start_peer(net_kernel, PROGRAM, env={"PING_INTERVAL": "1.0"}, dial=False) as child:

        async def three_at_once() -> Any:
            return await asyncio.gather(*(network.peer(child.location) for _ in range(3)))

        assert on_network(network, three_at_once()) == [0, 0, 0]
        assert [location for location in dials if location == child.location] == [child.location]
        assert len(links_to(child.location)) == 1


def test_messages_keep_their_order_when_a_duplicate_takes_over_mid_stream(
    net_kernel: AsynCoro,
) -> None:
    """Numbers stream to the child while two more links authenticate: whichever link both
    ends keep (the one they had, or a new one), the child takes every number once and in
    order, and the stream never stalls."""
    network = network_of(net_kernel)
    count, padding = 600, b"p" * 200_000
    dials: list[asyncio.Task[bool]] = []
    with start_peer(net_kernel, PROGRAM, env={"PING_INTERVAL": "1.0"}) as child:

        def main(coro: Any = None) -> Any:
            counter = yield Coro.locate("counter", child.location, timeout=10)
            for number in range(count):
                counter.send((number, padding))
                if number == 200:  # some queued on the current link: now the duplicates
                    assert (yield coro.sleep(0)) is None
                    on_network_soon(network, child.location, dials)
                if number % 10 == 9:
                    yield coro.sleep(0)
            counter.send("links")

        run(main, timeout=40)
        child.expect(rf"^IN ORDER {count}$")

        async def both() -> list[bool]:
            return list(await asyncio.gather(*dials))

        assert on_network(network, both()) == [True, True]  # the duplicates came
    assert not [line for line in child.proc.output if "OUT OF ORDER" in line]


def on_network_soon(network: Network, location: Location, dials: list[Any]) -> None:
    """Start two more dials to ``location`` on the network's loop (not waiting for them)."""

    def start() -> None:
        dials.extend(network.loop.create_task(dial(network, location)) for _ in range(2))

    network.loop.call_soon_threadsafe(start)


@contextmanager
def peer_with_a_link_new_ones_can_beat(
    net_kernel: AsynCoro, env: dict[str, str]
) -> Iterator[tuple[Child, Link]]:
    """A child running `PROGRAM` and the link to it, once a new link would win over that
    link with a chance of at least one in four: both ends keep the link with the smaller id
    (`link_ops`), so a child whose first link's id is among the smallest quarter is stopped
    and another started."""
    network = network_of(net_kernel)
    for _ in range(20):
        with start_peer(net_kernel, PROGRAM, env=env) as child:
            link = network.peers[child.location].link
            if link is not None and link.conn.link_id[0] >= 64:
                yield child, link
                return
    raise AssertionError("no first link with a large enough id in 20 children")


async def a_new_link_wins(network: Network, location: Location) -> None:
    """Dial ``location`` until a new link takes over from the current one at both ends
    (the current one from `peer_with_a_link_new_ones_can_beat`: each dial wins with a chance of at
    least one in four, so 40 all lose once in ~100,000)."""
    peer = network.peers[location]
    old = peer.link
    for _ in range(40):
        assert await dial(network, location)
        if peer.link is not old:
            return
    raise AssertionError("no new link won in 40 dials")


@pytest.mark.parametrize("net_thread", ["0", "1"], ids=["one-loop", "transport-thread"])
def test_a_new_link_reads_nothing_until_the_one_it_replaced_has_delivered_its_backlog(
    net_kernel: AsynCoro, monkeypatch: pytest.MonkeyPatch, net_thread: str
) -> None:
    """A slow child (it blocks its loop 1 ms per message, so it reads slowly too) has a
    backlog of 300 numbers (60 MB) queued towards it on the current link when the test dials
    new links until one wins at both ends; the next 300 go on the new link at once. The
    child must still take all 600 once and in order: it may not read the new link before the
    old one's backlog (reading both at once interleaves them). With a transport thread, the
    child also stops reading while its core is behind (intake), beside the hold."""
    monkeypatch.setattr(flow, "SEND_HIGH", 256 * 1024 * 1024)  # the backlog stays queued here
    network = network_of(net_kernel)
    count, padding = 300, b"p" * 200_000
    env = {"PING_INTERVAL": "1.0", "SLOW_SECONDS": "0.001", "DISCORO_NET_THREAD": net_thread}
    with peer_with_a_link_new_ones_can_beat(net_kernel, env) as (child, old):

        def main(coro: Any = None) -> Any:
            counter = yield Coro.locate("counter", child.location, timeout=10)
            for number in range(count):
                counter.send((number, padding))
            assert old.conn.queued > 20 * len(padding)  # most of it is still here

            async def take_over() -> int:
                """A new link wins; the bytes still queued on the old one then."""
                await a_new_link_wins(network, child.location)
                assert old.transport is not None  # queued, or sealed in its closing transport
                return old.conn.queued + old.transport.get_write_buffer_size()

            backlog = yield asyncio.wrap_future(
                asyncio.run_coroutine_threadsafe(take_over(), network.loop)
            )
            assert backlog > 20 * len(padding), backlog  # the old link still had plenty to say
            for number in range(count, 2 * count):
                counter.send((number, padding))  # on the new link
            counter.send("links")

        run(main, timeout=40)
        child.expect(rf"^IN ORDER {2 * count}$")
        on_network(network, asyncio.wait_for(asyncio.shield(old.lost), 20))  # retired, closed
        assert not old.died_silent
    out_of_order = [line for line in child.proc.output if "OUT OF ORDER" in line]
    assert not out_of_order, out_of_order[:5]
    assert not [line for line in child.proc.output if "silent" in line]


def test_a_peer_that_never_says_it_retired_the_old_link_is_read_after_the_wait(
    net_kernel: AsynCoro, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Neither side says ``link_retired`` (patched), so the old link stays open: a new link
    that won waits for that note, then, after `RETIRED_WAIT`, reads on with a warning that
    says why; a reply that came on it meanwhile is handed up then, not lost."""

    async def never(link: Link) -> None:
        return None

    monkeypatch.setattr(link_ops, "_say_retired", never)
    monkeypatch.setattr(link_ops, "RETIRED_WAIT", 0.5)
    network = network_of(net_kernel)
    env = {"PING_INTERVAL": "1.0", "NEVER_RETIRE": "1", "RETIRED_WAIT": "0.5"}
    with peer_with_a_link_new_ones_can_beat(net_kernel, env) as (child, old):
        peer = network.peers[child.location]
        on_network(network, a_new_link_wins(network, child.location))
        new = peer.link
        assert new is not None and new.held

        def main(coro: Any = None) -> Any:  # the reply comes on the held link
            counter = yield Coro.locate("counter", child.location, timeout=10)
            return counter

        assert run(main, timeout=20) is not None
        assert not new.held
        warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert [m for m in warned if "did not say it retired" in m], warned
        assert not old.lost.done()  # retired by neither side: it stays open
        network.loop.call_soon_threadsafe(old.close)
