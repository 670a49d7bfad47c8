"""Socket benchmark: `AsyncSocket` against plain asyncio streams, over loopback TCP.

Two workloads, each measured three ways:

- plain asyncio, the reference: ``asyncio.start_server``/``open_connection`` streams with the
  same 4-byte length framing, on a fresh event loop in the main thread (``asyncio.run``);
- discoro generator style (``msg = yield sock.recv_msg()``) and async style
  (``msg = await sock.recv_msg()``), coroutines on the kernel's loop thread.

Workloads: ``echo`` (a client sends a small message and waits for the echo, n round trips)
and ``bulk`` (one 64 MiB transfer, ``sendall`` against ``recvall``). Wall time is taken inside
the loop from the first send to the last byte in. Each cell is the median of the rounds with
the spread (min-max); implementations are interleaved within a round.

    python bench/socket_bench.py            # full run
    python bench/socket_bench.py --quick    # smoke test
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import struct
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Benchmark the working tree, whether or not the package is installed.
_SRC = Path(__file__).resolve().parents[1] / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

from discoro import AsynCoro, AsyncSocket, Coro  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

HEADER = struct.Struct(">L")
MESSAGE = b"m" * 64
BULK = 64 * 1024 * 1024


def listening() -> socket.socket:
    raw = socket.socket()
    raw.bind(("127.0.0.1", 0))
    raw.listen()
    return raw


# -- plain asyncio ----------------------------------------------------------------------------


async def _stream_read_msg(reader: asyncio.StreamReader) -> bytes:
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    return await reader.readexactly(size)


async def aio_echo(n: int) -> float:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(n):
            writer.write(HEADER.pack(len(MESSAGE)) + await _stream_read_msg(reader))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.perf_counter()
    for _ in range(n):
        writer.write(HEADER.pack(len(MESSAGE)) + MESSAGE)
        await writer.drain()
        await _stream_read_msg(reader)
    elapsed = time.perf_counter() - start
    writer.close()
    server.close()
    return n / elapsed


async def aio_bulk(size: int) -> float:
    done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(size)
        done.set_result(time.perf_counter())
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    payload = b"b" * size
    start = time.perf_counter()
    writer.write(payload)
    await writer.drain()
    end = await done
    writer.close()
    server.close()
    return size / (end - start) / 1e6


# -- discoro ----------------------------------------------------------------------------------


def gen_echo_server(listener: AsyncSocket, n: int, coro: Any = None) -> Any:
    conn, _ = yield listener.accept()
    for _ in range(n):
        yield conn.send_msg((yield conn.recv_msg()))
    conn.close()


def gen_echo_client(port: int, n: int, coro: Any = None) -> Any:
    sock = AsyncSocket(socket.socket())
    yield sock.connect(("127.0.0.1", port))
    start = time.perf_counter()
    for _ in range(n):
        yield sock.send_msg(MESSAGE)
        yield sock.recv_msg()
    elapsed = time.perf_counter() - start
    sock.close()
    return n / elapsed


async def async_echo_server(listener: AsyncSocket, n: int, coro: Any = None) -> None:
    conn, _ = await listener.accept()
    for _ in range(n):
        await conn.send_msg(await conn.recv_msg())
    conn.close()


async def async_echo_client(port: int, n: int, coro: Any = None) -> float:
    sock = AsyncSocket(socket.socket())
    await sock.connect(("127.0.0.1", port))
    start = time.perf_counter()
    for _ in range(n):
        await sock.send_msg(MESSAGE)
        await sock.recv_msg()
    elapsed = time.perf_counter() - start
    sock.close()
    return n / elapsed


def gen_bulk_receiver(listener: AsyncSocket, size: int, coro: Any = None) -> Any:
    conn, _ = yield listener.accept()
    yield conn.recvall(size)
    conn.close()
    return time.perf_counter()


def gen_bulk_sender(port: int, size: int, coro: Any = None) -> Any:
    sock = AsyncSocket(socket.socket())
    yield sock.connect(("127.0.0.1", port))
    start = time.perf_counter()
    yield sock.sendall(b"b" * size)
    sock.close()
    return start


async def async_bulk_receiver(listener: AsyncSocket, size: int, coro: Any = None) -> float:
    conn, _ = await listener.accept()
    await conn.recvall(size)
    conn.close()
    return time.perf_counter()


async def async_bulk_sender(port: int, size: int, coro: Any = None) -> float:
    sock = AsyncSocket(socket.socket())
    await sock.connect(("127.0.0.1", port))
    start = time.perf_counter()
    await sock.sendall(b"b" * size)
    sock.close()
    return start


def discoro_echo(server: Callable[..., Any], client: Callable[..., Any], n: int) -> float:
    with AsyncSocket(listening()) as listener:
        serving = Coro(server, listener, n)
        rate = float(Coro(client, listener.getsockname()[1], n).value())
        serving.value()
    return rate


def discoro_bulk(receiver: Callable[..., Any], sender: Callable[..., Any], size: int) -> float:
    with AsyncSocket(listening()) as listener:
        receiving = Coro(receiver, listener, size)
        start = float(Coro(sender, listener.getsockname()[1], size).value())
        end = float(receiving.value())
    return size / (end - start) / 1e6


WORKLOADS: dict[str, tuple[str, dict[str, Callable[[int], float]]]] = {
    "echo": (
        "echo round trips/s (64-byte messages)",
        {
            "asyncio": lambda n: asyncio.run(aio_echo(n)),
            "generator": lambda n: discoro_echo(gen_echo_server, gen_echo_client, n),
            "async": lambda n: discoro_echo(async_echo_server, async_echo_client, n),
        },
    ),
    "bulk": (
        "bulk transfer, MB/s (64 MiB, sendall/recvall)",
        {
            "asyncio": lambda size: asyncio.run(aio_bulk(size)),
            "generator": lambda size: discoro_bulk(gen_bulk_receiver, gen_bulk_sender, size),
            "async": lambda size: discoro_bulk(async_bulk_receiver, async_bulk_sender, size),
        },
    ),
}


def cell(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}-{max(values):,.0f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per measurement")
    options = parser.parse_args(argv)
    rounds = options.rounds or (3 if options.quick else 7)
    scale = 10 if options.quick else 1
    sizes = {"echo": 20_000 // scale, "bulk": BULK // scale}
    AsynCoro.instance()
    print(f"Python {sys.version.split()[0]}, {rounds} rounds")
    print("| workload | plain asyncio | discoro generator | discoro async |")
    print("|---|---|---|---|")
    for key, (title, impls) in WORKLOADS.items():
        results: dict[str, list[float]] = {name: [] for name in impls}
        for _ in range(rounds):
            for name, impl in impls.items():
                results[name].append(impl(sizes[key]))
        row = " | ".join(cell(results[name]) for name in impls)
        print(f"| {title} | {row} |")


if __name__ == "__main__":
    main()
