"""`Link` write path and receive path against a fake transport (no sockets): when records are
written, that control frames go ahead of queued user data (even between two records of a large
data frame), that frames wait (in order, unsealed) while the transport is paused, and that
received chunks are dispatched in one batch whose replies go out in one write, and that a
link reads and writes in turns (`READ_TURN`, `WRITE_TURN`) so its loop's other work runs
in between."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from discoro.net import link as link_module
from discoro.net.frontdoor import FrontDoor
from discoro.net.link import Link
from discoro.wire import NEED_DATA, Connection, HandshakeComplete, Identity, Message, Role, record

if TYPE_CHECKING:
    from collections.abc import Iterator

SECRET = b"link-test-secret"
SERVER_ID = Identity("server", "127.0.0.1", 9001, "s" * 32)
CLIENT_ID = Identity("client", "127.0.0.1", 9002, "c" * 32)


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[Any] = []
        self.closed = False
        self.limits: tuple[int, int] | None = None
        self.reading = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def write(self, data: Any) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.limits = (high or 0, low or 0)


class NoSpin:
    def touch(self) -> None:
        pass


class FakeKernel:
    """The two kernel methods a link calls around each received chunk, and the loop's spin
    (`core.idle_spin`): none here."""

    def __init__(self) -> None:
        self.reads = 0
        self.open_reads = 0
        self.spin = NoSpin()

    def begin_read(self) -> None:
        self.open_reads += 1

    def end_read(self) -> None:
        self.open_reads -= 1
        self.reads += 1


class FakeNetwork:
    ping_interval = 3600.0
    dead_after = 5

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.master_key = SECRET
        self.identity = SERVER_ID
        self.received: list[Message] = []
        self.reply_to: Link | None = None
        self.front_door = FrontDoor(loop)
        self.kernel = FakeKernel()
        self.reads_open_at_dispatch: list[int] = []

    def dispatch(self, link: Link, message: Message) -> None:
        self.received.append(message)
        self.reads_open_at_dispatch.append(self.kernel.open_reads)
        if message.rid:
            link.send(Message("reply", message.rid, {"r": 1}))

    def link_authenticated(self, link: Link, identity: Identity) -> None:
        link.peer = identity

    def link_lost(self, link: Link) -> None:
        pass


def _pump(conn: Connection, data: bytes) -> list[Any]:
    conn.receive_data(data)
    events = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
    return events


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def pair(loop: asyncio.AbstractEventLoop) -> tuple[Link, FakeTransport, Connection, FakeNetwork]:
    """A server-side Link, authenticated with a client Connection driven by hand."""
    network = FakeNetwork(loop)
    link = Link(network, Role.SERVER)  # type: ignore[arg-type]
    transport = FakeTransport()
    link.connection_made(transport)
    client = Connection(Role.CLIENT, SECRET, CLIENT_ID)
    client.start()
    feed(link, client.data_to_send())
    _pump(client, take(transport))
    feed(link, client.data_to_send())
    assert _pump(client, take(transport)) == [HandshakeComplete(SERVER_ID)]
    assert link.peer == CLIENT_ID
    return link, transport, client, network


def feed(link: Link, data: bytes) -> None:
    """What the transport does with received bytes: into the link's own buffer."""
    while data:
        room = link.get_buffer(-1)
        n = min(len(room), len(data))
        room[:n] = data[:n]
        link.buffer_updated(n)
        data = data[n:]


def take(transport: FakeTransport) -> bytes:
    data = b"".join(bytes(w) for w in transport.writes)
    transport.writes.clear()
    return data


def turn(loop: asyncio.AbstractEventLoop) -> None:
    loop.run_until_complete(asyncio.sleep(0))


def messages_in(client: Connection, data: bytes) -> list[Message]:
    return [event.message for event in _pump(client, data)]


def test_write_buffer_limits_are_set(pair: Any) -> None:
    _, transport, _, _ = pair
    assert transport.limits == (link_module.WRITE_HIGH, link_module.WRITE_LOW)


def test_first_frame_goes_at_once_and_a_burst_is_coalesced(pair: Any, loop: Any) -> None:
    link, transport, client, _ = pair
    link.send(Message("send", 0, {"c": 1}, b"a"))
    assert len(transport.writes) == 1  # at once: latency
    link.send(Message("send", 0, {"c": 2}, b"b"))
    link.send(Message("send", 0, {"c": 3}, b"c"))
    assert len(transport.writes) == 1
    turn(loop)
    assert len(transport.writes) == 2  # the rest of the burst in one write
    got = messages_in(client, take(transport))
    assert [m.fields["c"] for m in got] == [1, 2, 3]


def test_control_goes_ahead_of_data_and_large_payloads_go_in_bounded_writes(
    pair: Any, loop: Any
) -> None:
    link, transport, client, _ = pair
    big = bytes(range(256)) * 4096  # 1 MiB
    link.send(Message("send", 0, {"c": 0}, b"small"))
    link.send(Message("send", 0, {"c": 1}, big))
    link.send(Message("reply", 5, {"r": 1}))
    turn(loop)
    assert max(len(w) for w in transport.writes) < record.SEAL_BUDGET + 2 * record.MAX_PLAINTEXT
    got = messages_in(client, take(transport))
    assert [m.op for m in got] == ["send", "reply", "send"]  # the reply overtook queued data
    assert got[2].payload == big


def test_control_overtakes_a_large_data_frame_between_its_records(pair: Any, loop: Any) -> None:
    link, transport, client, _ = pair
    big = b"z" * (4 * record.SEAL_BUDGET)
    original = transport.write

    def write_then_pause(data: Any) -> None:
        original(data)
        link.pause_writing()  # as a transport does when its buffer passes the mark

    transport.write = write_then_pause  # type: ignore[method-assign]
    link.send(Message("send", 0, {"c": 1}, big))  # one batch of records, then paused
    assert len(transport.writes) == 1 and link.conn.queued
    link.send(Message("pong"))
    transport.write = original  # type: ignore[method-assign]
    link.resume_writing()
    while link.conn.queued:  # the rest, a write turn (`WRITE_TURN`) per loop iteration
        turn(loop)
    got = messages_in(client, take(transport))
    assert [m.op for m in got] == ["pong", "send"] and got[1].payload == big


def test_frames_wait_while_paused_and_go_in_order(pair: Any, loop: Any) -> None:
    link, transport, client, _ = pair
    big = b"x" * (record.MAX_PLAINTEXT * 2)
    link.pause_writing()
    waiter = loop.create_task(link.drained())
    for i in range(5):
        link.send(Message("send", 0, {"c": 7, "i": i}, big if i % 2 else b"small"))
    turn(loop)
    assert transport.writes == [] and not waiter.done()
    link.resume_writing()
    turn(loop)
    assert waiter.done()
    got = messages_in(client, take(transport))
    assert [m.fields["i"] for m in got] == [0, 1, 2, 3, 4]  # to one coroutine: in order
    assert got[1].payload == big


def test_pause_during_a_write_holds_the_rest(pair: Any, loop: Any) -> None:
    link, transport, client, _ = pair
    big = b"y" * record.SEAL_BUDGET
    original = transport.write

    def write_then_pause(data: Any) -> None:
        original(data)
        if not link._paused:
            link.pause_writing()  # as a transport does when its buffer passes the mark

    transport.write = write_then_pause  # type: ignore[method-assign]
    link.pause_writing()
    for i in range(3):
        link.send(Message("send", 0, {"c": i}, big))
    link.resume_writing()  # writes one batch, is paused again, keeps the rest queued
    assert len(transport.writes) == 1 and link.conn.queued
    while link.conn.queued:
        link.resume_writing()
    got = messages_in(client, take(transport))
    assert [m.fields["c"] for m in got] == [0, 1, 2]


def test_a_received_batch_is_dispatched_and_answered_in_one_write(pair: Any, loop: Any) -> None:
    link, transport, client, network = pair
    requests = [Message("deliver", rid, {"c": 1}, b"p") for rid in range(1, 51)]
    feed(link, b"".join(client.send(m) for m in requests))
    assert network.received == requests
    assert len(transport.writes) == 1  # fifty replies, one write
    replies = messages_in(client, take(transport))
    assert [m.rid for m in replies] == list(range(1, 51))


def test_a_received_chunk_is_dispatched_inside_one_read_of_the_kernel(pair: Any, loop: Any) -> None:
    """Every message of a chunk is handed up between the kernel's ``begin_read`` and
    ``end_read`` (the coroutines it wakes run at ``end_read``: `core.wakeups`)."""
    link, _transport, client, network = pair
    reads_before = network.kernel.reads
    requests = [Message("deliver", rid, {"c": 1}, b"p") for rid in range(1, 4)]
    feed(link, b"".join(client.send(m) for m in requests))
    assert network.received == requests
    assert network.reads_open_at_dispatch == [1, 1, 1]
    assert network.kernel.open_reads == 0
    assert network.kernel.reads > reads_before


def test_close_writes_what_is_queued(pair: Any, loop: Any) -> None:
    link, transport, client, _ = pair
    link.pause_writing()
    link.send(Message("send", 0, {"c": 1}, b"a"))
    link.send(Message("peer_closed"))
    link.close()
    assert transport.closed
    assert [m.op for m in messages_in(client, take(transport))] == ["send", "peer_closed"]


def test_a_link_lets_its_loop_take_a_turn_after_reading_a_read_turn(pair: Any, loop: Any) -> None:
    """A stream must not keep the loop in one link's reads (the loop reads as long as the
    socket has data): other callbacks, a transport thread's hand-over included, run first."""
    link, transport, client, network = pair
    big = b"r" * link_module.READ_TURN
    ran: list[bool] = []
    loop.call_soon(lambda: ran.append(transport.reading))  # waits while the link reads
    feed(link, client.send(Message("send", 0, {"c": 1}, big)))
    assert network.received[-1].payload == big  # what was read is handed up first
    assert not transport.reading
    turn(loop)
    assert ran == [False] and transport.reading
    feed(link, client.send(Message("send", 0, {"c": 2}, b"small")))
    assert transport.reading  # the count started again


def test_a_link_paused_for_intake_during_its_turn_stays_paused(pair: Any, loop: Any) -> None:
    link, transport, client, _ = pair
    feed(link, client.send(Message("send", 0, {"c": 1}, b"i" * link_module.READ_TURN)))
    link.pause_intake()  # the core has too much waiting: reading waits for resume_intake
    turn(loop)
    assert not transport.reading
    link.resume_intake()
    assert transport.reading


def test_a_backlog_is_written_a_turn_at_a_time_and_drained_is_told(pair: Any, loop: Any) -> None:
    """While the kernel keeps taking bytes, a backlog of MiBs goes out `WRITE_TURN` bytes per
    loop iteration (replies get read in between), and `drained` ends when the last turn
    empties the lanes, though the transport never asked for a pause after it."""
    link, transport, client, _ = pair
    turn_max = link_module.WRITE_TURN + record.SEAL_BUDGET + 2 * record.MAX_PLAINTEXT

    def written() -> int:
        return sum(len(w) for w in transport.writes)

    turns: list[int] = []
    flush_soon = link._flush_soon

    def counted() -> None:  # each continuation: what it wrote
        before = written()
        flush_soon()
        turns.append(written() - before)

    link._flush_soon = counted  # type: ignore[method-assign]
    big = b"w" * (4 * link_module.WRITE_TURN)
    link.pause_writing()
    link.send(Message("send", 0, {"c": 1}, big))
    waiter = loop.create_task(link.drained())
    link.resume_writing()
    assert link_module.WRITE_TURN <= written() < turn_max
    assert link.conn.queued and not waiter.done()
    while link.conn.queued:
        turn(loop)
    assert len(turns) >= 3 and max(turns) < turn_max, turns
    turn(loop)
    assert waiter.done()
    got = messages_in(client, take(transport))
    assert len(got) == 1 and got[0].payload == big
