"""`AsyncFile` over sockets and pipes (reference 1.13), in both coroutine styles."""

from __future__ import annotations

import os
import socket
import time
from typing import TYPE_CHECKING, Any

import pytest

import discoro
from discoro import asyncfile
from discoro.core.coro import Coro

if TYPE_CHECKING:
    from collections.abc import Iterator


def run(target: Any, *args: Any) -> Any:
    return Coro(target, *args).value(timeout=20)


@pytest.fixture
def pair() -> Iterator[tuple[asyncfile.AsyncFile, socket.socket]]:
    """An AsyncFile on one end of a socketpair and the plain (blocking) other end."""
    ours, theirs = socket.socketpair()
    wrapped = asyncfile.AsyncFile(ours)
    yield wrapped, theirs
    wrapped.close()
    theirs.close()


def test_module_paths_of_the_original() -> None:
    import subprocess

    import discoro as asyncoro

    assert asyncoro.asyncfile is asyncfile
    assert asyncoro.asyncfile.AsyncPipe is asyncfile.AsyncPipe
    assert issubclass(asyncfile.Popen, subprocess.Popen)
    assert "asyncfile" in discoro.__all__


def test_read_write_generator_style(pair: tuple[asyncfile.AsyncFile, socket.socket]) -> None:
    afile, peer = pair

    def body(coro=None):
        sent = yield afile.write(b"ping")
        peer.sendall(peer.recv(4).upper())
        got = yield afile.read(100)  # returns with what is there, not 100 bytes
        return sent, got

    assert run(body) == (4, b"PING")


def test_read_write_async_style(pair: tuple[asyncfile.AsyncFile, socket.socket]) -> None:
    afile, peer = pair

    async def body(coro=None):
        sent = await afile.write("text é")  # str is written as UTF-8
        peer.sendall(peer.recv(100)[::-1])
        return sent, await afile.read(100)

    sent, got = run(body)
    assert sent == len("text é".encode())
    assert got == "text é".encode()[::-1]


def test_full_read_waits_for_every_byte_and_eof_ends_it(
    pair: tuple[asyncfile.AsyncFile, socket.socket],
) -> None:
    afile, peer = pair

    def writer(coro=None):
        for part in (b"ab", b"cd", b"efgh"):  # one part per turn of the loop
            peer.sendall(part)
            yield coro.sleep(0)
        peer.shutdown(socket.SHUT_WR)

    def reader(coro=None):
        Coro(writer)
        first = yield afile.read(5, full=True)
        rest = yield afile.read(100, full=True)  # fewer: end of file came first
        end = yield afile.read(100, full=True)
        return first, rest, end

    assert run(reader) == (b"abcde", b"fgh", b"")


def test_readline_keeps_what_follows_the_line(
    pair: tuple[asyncfile.AsyncFile, socket.socket],
) -> None:
    afile, peer = pair
    peer.sendall(b"one\ntwo\nthree-long\nlast")
    peer.shutdown(socket.SHUT_WR)

    async def body(coro=None):
        lines = [await afile.readline(), await afile.readline()]
        lines.append(await afile.readline(size=5))  # cut at the size
        lines.append(await afile.readline())  # the rest of that line
        lines.append(await afile.read())  # the buffered tail, then end of file
        lines.append(await afile.readline())
        return lines

    assert run(body) == [b"one\n", b"two\n", b"three", b"-long\n", b"last", b""]


def test_read_to_eof_with_size_zero(pair: tuple[asyncfile.AsyncFile, socket.socket]) -> None:
    afile, peer = pair
    data = os.urandom(300_000)  # more than one system call's worth

    def writer(coro=None):
        peer.setblocking(False)
        view = memoryview(data)
        while view:
            try:
                view = view[peer.send(view) :]
            except BlockingIOError:
                yield coro.sleep(0.01)
        peer.shutdown(socket.SHUT_WR)

    def reader(coro=None):
        Coro(writer)
        return (yield afile.read())

    assert run(reader) == data


def test_timeout_without_data_raises_ioerror(
    pair: tuple[asyncfile.AsyncFile, socket.socket],
) -> None:
    afile, _peer = pair

    def body(coro=None):
        try:
            yield afile.read(10, timeout=0.05)
        except OSError as exc:  # IOError, as the original threw
            return type(exc), str(exc)
        return None

    assert run(body) == (TimeoutError, "timedout")


def test_timeout_after_partial_data_returns_it(
    pair: tuple[asyncfile.AsyncFile, socket.socket],
) -> None:
    afile, peer = pair
    peer.sendall(b"abc\n")

    async def body(coro=None):
        head = await afile.readline(size=2)  # the rest of the line is now buffered
        partial = await afile.read(10, full=True, timeout=0.05)
        with pytest.raises(TimeoutError):
            await afile.read(0, timeout=0)  # nothing there, and the deadline has passed
        peer.sendall(b"xy")  # a line without its end: at the deadline, readline gives it
        return head, partial, await afile.readline(timeout=0.05)

    assert run(body) == (b"ab", b"c\n", b"xy")


def test_write_full_larger_than_the_socket_buffer(
    pair: tuple[asyncfile.AsyncFile, socket.socket],
) -> None:
    afile, peer = pair
    data = os.urandom(4 * 1024 * 1024)
    peer_file = asyncfile.AsyncFile(peer)

    async def reader(coro=None):
        return await peer_file.read(len(data), full=True)

    async def writer(coro=None):
        receiving = Coro(reader)
        sent = await afile.write(data, full=True)
        return sent, await receiving.finish()

    sent, got = run(writer)
    assert sent == len(data)
    assert got == data


def test_write_timeout_returns_the_count_written(
    pair: tuple[asyncfile.AsyncFile, socket.socket],
) -> None:
    afile, _peer = pair  # nobody reads: the buffers fill up

    def body(coro=None):
        sent = yield afile.write(b"x" * 8 * 1024 * 1024, full=True, timeout=0.1)
        try:
            yield afile.write(b"more", timeout=0.05)
        except TimeoutError:
            return sent, "timedout"
        return sent, None

    sent, second = run(body)
    assert 0 < sent < 8 * 1024 * 1024
    assert second == "timedout"


def test_one_reader_at_a_time(pair: tuple[asyncfile.AsyncFile, socket.socket]) -> None:
    afile, peer = pair

    async def first(coro=None):
        return await afile.read(4)

    async def second(coro=None):
        reading = Coro(first)
        await coro.sleep(0)  # let it start waiting
        with pytest.raises(RuntimeError, match="another read"):
            await afile.readline()
        peer.sendall(b"done")
        return await reading.finish()

    assert run(second) == b"done"


def test_terminated_reader_leaves_the_file_usable(
    pair: tuple[asyncfile.AsyncFile, socket.socket],
) -> None:
    afile, peer = pair

    async def blocked(coro=None):
        await afile.read(4)

    async def body(coro=None):
        victim = Coro(blocked)
        await coro.sleep(0)
        victim.terminate()
        await victim.finish()
        peer.sendall(b"next")
        return await afile.read(4, timeout=10)

    assert run(body) == b"next"


def test_close_ends_a_pending_read_and_later_calls_fail(
    pair: tuple[asyncfile.AsyncFile, socket.socket],
) -> None:
    afile, _peer = pair

    async def blocked(coro=None):
        return await afile.read(4)

    async def body(coro=None):
        waiting = Coro(blocked)
        await coro.sleep(0)
        afile.close()
        afile.close()  # idempotent
        with pytest.raises(ValueError, match="closed"):
            await afile.write(b"x")
        return await waiting.finish()

    assert run(body) == b""
    assert afile.closed


def test_close_from_a_thread_ends_a_pending_read(
    pair: tuple[asyncfile.AsyncFile, socket.socket],
) -> None:
    afile, _peer = pair

    async def blocked(coro=None):
        return await afile.read(4)

    reading = Coro(blocked)
    deadline = time.monotonic() + 20
    while afile._busy.get("read") is None:  # until the read waits for data
        assert time.monotonic() < deadline, "the read never started waiting"
        time.sleep(0.001)
    afile.close()  # from the main thread: handed over to the loop
    assert reading.value(timeout=20) == b""
    assert afile.closed


def test_attributes_and_context_manager_on_a_socket() -> None:
    ours, theirs = socket.socketpair()
    with theirs, asyncfile.AsyncFile(ours) as afile:
        assert afile.family == socket.AF_UNIX  # delegated to the socket
        assert afile.fileno() == ours.fileno()
        assert not ours.getblocking()
    assert ours.fileno() == -1  # closed through the socket object


def test_fd_number_from_os_pipe() -> None:
    read_fd, write_fd = asyncfile.pipe()
    reader, writer = asyncfile.AsyncFile(read_fd), asyncfile.AsyncFile(write_fd)

    async def body(coro=None):
        async with writer:
            await writer.write(b"line 1\nline 2\n", full=True)
        async with reader:
            return [await reader.readline(), await reader.readline(), await reader.readline()]

    assert run(body) == [b"line 1\n", b"line 2\n", b""]
    with pytest.raises(AttributeError):
        _ = reader.mode  # nothing to delegate to for a bare descriptor
    assert reader.closed and writer.closed
