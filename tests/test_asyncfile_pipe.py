"""`AsyncPipe` over real subprocesses and chains of them (reference 1.13, 4.5.6's ``poll``)."""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest

from discoro import asyncfile
from discoro.core.coro import Coro

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PIPE = subprocess.PIPE
WORDS = b"apple\nbanana\navocado\ncherry\napricot\n"


def run(target: Any, *args: Any) -> Any:
    return Coro(target, *args).value(timeout=30)


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The test's processes: every one still running at the end is killed and reaped."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def chain(
    procs: list[subprocess.Popen[bytes]], first: list[str], second: list[str]
) -> asyncfile.AsyncPipe:
    """``first | second``, as ported programs build it."""
    head = asyncfile.Popen(first, stdin=PIPE, stdout=PIPE)
    procs.append(head)
    tail = asyncfile.Popen(second, stdin=head.stdout, stdout=PIPE)
    procs.append(tail)
    assert head.stdout is not None
    head.stdout.close()  # only the second process reads it now
    head.stdout = None
    return asyncfile.AsyncPipe(head, tail)


def test_communicate_through_grep_and_wc(spawned: list[subprocess.Popen[bytes]]) -> None:
    pipe = chain(spawned, ["grep", "^a"], ["wc", "-l"])

    def body(coro=None):
        return (yield pipe.communicate(WORDS))

    out, err = run(body)
    assert int(out) == 3
    assert err is None  # not a pipe
    # communicate waited for both ends of the chain to exit: no race with poll()
    assert pipe.poll() == 0 and spawned[0].returncode == 0


def test_communicate_with_str_and_with_a_file(
    spawned: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    words = tmp_path / "words"
    words.write_bytes(WORDS * 5000)  # several chunks of the copy
    from_str = chain(spawned, ["grep", "an"], ["wc", "-c"])
    from_binary = chain(spawned, ["grep", "-c", "^a"], ["cat"])
    from_text = chain(spawned, ["grep", "-c", "^b"], ["cat"])

    async def body(coro=None):
        text = await from_str.communicate(WORDS.decode())
        with words.open("rb") as source:
            binary = await from_binary.communicate(source)
        with words.open() as source:  # as the original's examples: read gives str
            counted = await from_text.communicate(source)
        return text, binary, counted

    (text_out, _), (binary_out, _), (text_file_out, _) = run(body)
    assert int(text_out) == len(b"banana\n")
    assert int(binary_out) == 3 * 5000
    assert int(text_file_out) == 5000


def test_line_by_line_through_a_chain_generator_style(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    pipe = chain(spawned, ["grep", "--line-buffered", "^a"], ["cat", "-n"])

    def body(coro=None):
        lines = []
        for word in WORDS.splitlines(keepends=True):
            yield pipe.write(word, full=True)
            if word.startswith(b"a"):  # it comes back before we send the next word
                lines.append((yield pipe.readline()))
        pipe.stdin.close()
        end = yield pipe.readline()
        return lines, end

    lines, end = run(body)
    assert [line.split() for line in lines] == [
        [b"1", b"apple"],
        [b"2", b"avocado"],
        [b"3", b"apricot"],
    ]
    assert end == b""


def test_line_by_line_through_a_chain_async_style(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    pipe = chain(spawned, ["grep", "--line-buffered", "-v", "^a"], ["cat"])

    async def feeder(coro=None):
        for word in WORDS.splitlines(keepends=True):
            await pipe.write(word, full=True)
        pipe.stdin.close()

    async def body(coro=None):
        Coro(feeder)
        lines = []
        while line := await pipe.readline():
            lines.append(line)
        return lines

    assert run(body) == [b"banana\n", b"cherry\n"]


def test_reading_stderr(spawned: list[subprocess.Popen[bytes]]) -> None:
    script = "echo out; echo err1 >&2; echo err2 >&2; exit 3"
    proc = asyncfile.Popen(["sh", "-c", script], stdout=PIPE, stderr=PIPE)
    spawned.append(proc)
    pipe = asyncfile.AsyncPipe(proc)

    def body(coro=None):
        first = yield pipe.readline_stderr()
        rest = yield pipe.read_stderr()  # to end of file
        out = yield pipe.read()
        return first, rest, out

    assert run(body) == (b"err1\n", b"err2\n", b"out\n")
    assert proc.wait(timeout=10) == 3
    assert pipe.poll() == 3 and pipe.returncode == 3  # delegated to the Popen
    assert pipe.pid == proc.pid


def test_stderr_of_a_chain_and_communicate(spawned: list[subprocess.Popen[bytes]]) -> None:
    head = asyncfile.Popen(["sh", "-c", "cat; echo warned >&2"], stdin=PIPE, stdout=PIPE)
    spawned.append(head)
    tail = asyncfile.Popen(
        ["sh", "-c", "wc -l; echo tail-error >&2"], stdin=head.stdout, stdout=PIPE, stderr=PIPE
    )
    spawned.append(tail)
    pipe = asyncfile.AsyncPipe(head, tail)

    async def body(coro=None):
        return await pipe.communicate(b"a\nb\n")

    out, err = run(body)
    assert (int(out), err) == (2, b"tail-error\n")  # the last process's stderr


def test_large_input_while_reading_output_does_not_deadlock(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    # cat echoes everything: with 4 MiB going in and nobody reading, both pipes fill up
    # (64 KiB each) and a writer that does not read at the same time blocks for ever.
    data = os.urandom(4 * 1024 * 1024)
    proc = asyncfile.Popen(["cat"], stdin=PIPE, stdout=PIPE, stderr=PIPE)
    spawned.append(proc)
    pipe = asyncfile.AsyncPipe(proc)

    def body(coro=None):
        return (yield pipe.communicate(data))

    out, err = run(body)
    assert out == data and err == b""


def test_large_write_and_read_in_two_coroutines(spawned: list[subprocess.Popen[bytes]]) -> None:
    data = os.urandom(3 * 1024 * 1024)
    proc = asyncfile.Popen(["cat"], stdin=PIPE, stdout=PIPE)
    spawned.append(proc)
    pipe = asyncfile.AsyncPipe(proc)

    async def writer(coro=None):
        written = await pipe.write(data, full=True)
        pipe.stdin.close()
        return written

    async def reader(coro=None):
        writing = Coro(writer)
        out = await pipe.read()
        return out, await writing.finish()

    out, written = run(reader)
    assert written == len(data) and out == data


def test_read_timeout_on_a_silent_child(spawned: list[subprocess.Popen[bytes]]) -> None:
    proc = asyncfile.Popen(["cat"], stdin=PIPE, stdout=PIPE)
    spawned.append(proc)
    pipe = asyncfile.AsyncPipe(proc)

    def body(coro=None):
        try:
            yield pipe.read(10, timeout=0.1)
        except OSError as exc:
            silent = str(exc)
        yield pipe.write(b"abc\n", full=True)
        head = yield pipe.readline(size=2)  # proves the line came back; "c\n" is buffered
        partial = yield pipe.read(100, full=True, timeout=0.1)
        return silent, head, partial

    assert run(body) == ("timedout", b"ab", b"c\n")
    assert proc.poll() is None  # the timeouts did not disturb the child


def test_close_after_the_child_exited(spawned: list[subprocess.Popen[bytes]]) -> None:
    proc = asyncfile.Popen(
        [sys.executable, "-c", "print('bye')"], stdin=PIPE, stdout=PIPE, stderr=PIPE
    )
    spawned.append(proc)
    pipe = asyncfile.AsyncPipe(proc)
    assert proc.wait(timeout=20) == 0

    async def body(coro=None):
        with pipe:
            line = await pipe.readline()
        with pytest.raises(ValueError, match="closed"):
            await pipe.read()
        return line

    assert run(body) == b"bye\n"
    assert pipe.stdin.closed and pipe.stdout.closed and pipe.stderr.closed
    assert proc.stdout.closed  # the Popen's own file objects were closed, not leaked
    pipe.close()  # again: nothing happens
    assert pipe.poll() == 0


def test_close_wakes_a_pending_reader(spawned: list[subprocess.Popen[bytes]]) -> None:
    proc = asyncfile.Popen(["cat"], stdin=PIPE, stdout=PIPE)
    spawned.append(proc)
    pipe = asyncfile.AsyncPipe(proc)

    async def blocked(coro=None):
        return await pipe.readline()

    async def body(coro=None):
        reading = Coro(blocked)
        await coro.sleep(0)
        pipe.close()  # cat sees end of file and exits
        return await reading.finish()

    assert run(body) == b""
    assert proc.wait(timeout=10) == 0


def test_missing_pipes_are_reported(spawned: list[subprocess.Popen[bytes]]) -> None:
    proc = asyncfile.Popen(["true"], stdout=PIPE)
    spawned.append(proc)
    pipe = asyncfile.AsyncPipe(proc)
    assert pipe.stdin is None and pipe.stderr is None

    async def body(coro=None):
        with pytest.raises(ValueError, match="no stdin pipe"):
            await pipe.write(b"x")
        with pytest.raises(ValueError, match="no stderr pipe"):
            await pipe.read_stderr()
        return await pipe.communicate()

    assert run(body) == (b"", None)


def test_terminating_a_coroutine_in_communicate_closes_stdin(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    proc = asyncfile.Popen(["cat"], stdin=PIPE, stdout=PIPE, stderr=PIPE)
    spawned.append(proc)
    pipe = asyncfile.AsyncPipe(proc)
    endless = _EndlessInput()

    def talker(coro=None):
        yield pipe.communicate(endless)

    async def body(coro=None):
        victim = Coro(talker)
        while endless.reads < 3:  # communicate is copying: cat's output is being read
            await coro.sleep(0.01)
        victim.terminate()
        await victim.finish()

    run(body)
    # nobody reads cat's output any more: read it here, or cat may block writing it and
    # never get to read its input's end
    assert proc.stdout is not None
    _read_to_end(proc.stdout.fileno(), deadline=time.monotonic() + 20)
    assert proc.wait(timeout=10) == 0  # its input was closed: it saw end of file


def _read_to_end(fd: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        if select.select([fd], [], [], 1.0)[0] and not os.read(fd, 1 << 16):
            return
    raise AssertionError("cat's output did not end: its input was never closed")


class _EndlessInput:
    """A file object whose ``read`` never reaches end of file."""

    def __init__(self) -> None:
        self.reads = 0

    def read(self, size: int) -> bytes:
        self.reads += 1
        return b"y\n" * (size // 2)


def test_usable_from_plain_asyncio(spawned: list[subprocess.Popen[bytes]]) -> None:
    proc = asyncfile.Popen(["cat"], stdin=PIPE, stdout=PIPE)
    spawned.append(proc)

    async def main() -> tuple[bytes, bytes | None, int | None]:
        pipe = asyncfile.AsyncPipe(proc)
        await pipe.write(b"first\n", full=True)
        line = await pipe.readline(timeout=10)
        out, _ = await pipe.communicate(b"second\n")
        return line, out, pipe.poll()

    assert asyncio.run(main()) == (b"first\n", b"second\n", 0)
