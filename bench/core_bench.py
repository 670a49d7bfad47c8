"""Core benchmark: local coroutines and messages, discoro against plain asyncio.

Three workloads, each measured three ways:

- plain asyncio, the physical reference: ``asyncio.Queue`` mailboxes and
  ``loop.create_task`` coroutines, on a fresh event loop in the main thread (``asyncio.run``);
- discoro, generator style (``def f(coro=None): msg = yield coro.receive()``);
- discoro, async style (``async def f(coro=None): msg = await coro.receive()``).

The discoro workloads run on the kernel's loop thread; the main thread creates the coroutines
and blocks in ``value()``. Wall time is taken inside the loop with ``time.perf_counter``: from
the moment the first coroutine begins its work until the last result is in, so interpreter
start-up, kernel start-up and the thread hop of ``value()`` are not counted.

Each measurement is repeated (``--rounds``, implementations interleaved within a round so a
noisy stretch hits all of them) and reported as the median with the spread (min-max).

    python bench/core_bench.py               # full run (about 30 s on 2 cores)
    python bench/core_bench.py --quick       # short run, for a smoke test
    python bench/core_bench.py --rounds 9    # more rounds, tighter medians
    python bench/core_bench.py --profile pingpong --style gen   # cProfile of one workload
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import platform
import pstats
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Benchmark the working tree, whether or not the package is installed.
_SRC = Path(__file__).resolve().parents[1] / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

from discoro import AsynCoro, Coro  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

perf_counter = time.perf_counter
GOAL = 2.0  # discoro should be within GOAL x of plain asyncio


# -- 1. ping-pong: round trips between two coroutines ------------------------------------------


async def aio_pingpong(n: int) -> float:
    async def ponger(mailbox: asyncio.Queue[Any]) -> None:
        peer = await mailbox.get()
        for _ in range(n):
            msg = await mailbox.get()
            peer.put_nowait(msg)

    async def pinger(mailbox: asyncio.Queue[Any], peer: asyncio.Queue[Any]) -> float:
        t0 = perf_counter()
        peer.put_nowait(mailbox)
        for i in range(n):
            peer.put_nowait(i)
            await mailbox.get()
        return perf_counter() - t0

    loop = asyncio.get_running_loop()
    pong_box: asyncio.Queue[Any] = asyncio.Queue()
    ping_box: asyncio.Queue[Any] = asyncio.Queue()
    pong_task = loop.create_task(ponger(pong_box))
    elapsed = await loop.create_task(pinger(ping_box, pong_box))
    await pong_task
    return elapsed


def gen_ponger(n: int, coro: Any = None) -> Any:
    peer = yield coro.receive()
    for _ in range(n):
        msg = yield coro.receive()
        peer.send(msg)


def gen_pinger(peer: Coro, n: int, coro: Any = None) -> Any:
    t0 = perf_counter()
    peer.send(coro)
    for i in range(n):
        peer.send(i)
        yield coro.receive()
    return perf_counter() - t0


async def async_ponger(n: int, coro: Any = None) -> None:
    peer = await coro.receive()
    for _ in range(n):
        msg = await coro.receive()
        peer.send(msg)


async def async_pinger(peer: Coro, n: int, coro: Any = None) -> float:
    t0 = perf_counter()
    peer.send(coro)
    for i in range(n):
        peer.send(i)
        await coro.receive()
    return perf_counter() - t0


def discoro_pingpong(ponger: Callable[..., Any], pinger: Callable[..., Any], n: int) -> float:
    pong = Coro(ponger, n)
    elapsed = Coro(pinger, pong, n).value()
    pong.value()
    return float(elapsed)


# -- 2. one-way: a sender sends n messages, a receiver takes them ------------------------------


async def aio_oneway(n: int) -> float:
    async def receiver(mailbox: asyncio.Queue[Any]) -> float:
        for _ in range(n):
            await mailbox.get()
        return perf_counter()

    async def sender(peer: asyncio.Queue[Any]) -> float:
        t0 = perf_counter()
        for i in range(n):
            peer.put_nowait(i)
        return t0

    loop = asyncio.get_running_loop()
    mailbox: asyncio.Queue[Any] = asyncio.Queue()
    recv_task = loop.create_task(receiver(mailbox))
    t0 = await loop.create_task(sender(mailbox))
    return await recv_task - t0


def gen_receiver(n: int, coro: Any = None) -> Any:
    for _ in range(n):
        yield coro.receive()
    return perf_counter()


def gen_sender(peer: Coro, n: int, coro: Any = None) -> Any:
    t0 = perf_counter()
    for i in range(n):
        peer.send(i)
    return t0
    yield  # a generator function; never reached


async def async_receiver(n: int, coro: Any = None) -> float:
    for _ in range(n):
        await coro.receive()
    return perf_counter()


async def async_sender(peer: Coro, n: int, coro: Any = None) -> float:
    t0 = perf_counter()
    for i in range(n):
        peer.send(i)
    return t0


def discoro_oneway(receiver: Callable[..., Any], sender: Callable[..., Any], n: int) -> float:
    recv = Coro(receiver, n)
    t0 = Coro(sender, recv, n).value()
    return float(recv.value() - t0)


# -- 3. spawn: a parent creates n children that end at once and waits for all ------------------
# Each child tells the parent it is done with a message, so "finished" includes the child
# running to its end (and, in discoro, being retired by the kernel).


async def aio_spawn(n: int) -> float:
    async def child(parent: asyncio.Queue[Any]) -> None:
        parent.put_nowait(1)

    async def parent() -> float:
        t0 = perf_counter()
        loop = asyncio.get_running_loop()
        mailbox: asyncio.Queue[Any] = asyncio.Queue()
        children = [loop.create_task(child(mailbox)) for _ in range(n)]
        for _ in range(n):
            await mailbox.get()
        elapsed = perf_counter() - t0
        del children
        return elapsed

    return await asyncio.get_running_loop().create_task(parent())


def gen_child(parent: Coro, coro: Any = None) -> Any:
    parent.send(1)
    yield from ()  # a generator function that ends at once


def gen_parent(n: int, coro: Any = None) -> Any:
    t0 = perf_counter()
    children = [Coro(gen_child, coro) for _ in range(n)]
    for _ in range(n):
        yield coro.receive()
    elapsed = perf_counter() - t0
    del children
    return elapsed


async def async_child(parent: Coro, coro: Any = None) -> None:
    parent.send(1)


async def async_parent(n: int, coro: Any = None) -> float:
    t0 = perf_counter()
    children = [Coro(async_child, coro) for _ in range(n)]
    for _ in range(n):
        await coro.receive()
    elapsed = perf_counter() - t0
    del children
    return elapsed


# -- the table -----------------------------------------------------------------------------


@dataclass
class Workload:
    key: str
    title: str
    unit: str
    n_full: int
    n_quick: int
    runs: dict[str, Callable[[int], float]]


IMPLS = ("asyncio", "gen", "async")

WORKLOADS = [
    Workload(
        "pingpong",
        "ping-pong between two coroutines",
        "round trips/s",
        50_000,
        10_000,
        {
            "asyncio": lambda n: asyncio.run(aio_pingpong(n)),
            "gen": lambda n: discoro_pingpong(gen_ponger, gen_pinger, n),
            "async": lambda n: discoro_pingpong(async_ponger, async_pinger, n),
        },
    ),
    Workload(
        "oneway",
        "one-way messages",
        "messages/s",
        500_000,
        100_000,
        {
            "asyncio": lambda n: asyncio.run(aio_oneway(n)),
            "gen": lambda n: discoro_oneway(gen_receiver, gen_sender, n),
            "async": lambda n: discoro_oneway(async_receiver, async_sender, n),
        },
    ),
    Workload(
        "spawn",
        "coroutines created and finished",
        "coroutines/s",
        50_000,
        10_000,
        {
            "asyncio": lambda n: asyncio.run(aio_spawn(n)),
            "gen": lambda n: float(Coro(gen_parent, n).value()),
            "async": lambda n: float(Coro(async_parent, n).value()),
        },
    ),
]


def fmt_rate(rate: float) -> str:
    if rate >= 1e6:
        return f"{rate / 1e6:.2f}M"
    if rate >= 1e3:
        return f"{rate / 1e3:.1f}k"
    return f"{rate:.0f}"


def cell(rates: list[float]) -> str:
    return f"{fmt_rate(statistics.median(rates))} ({fmt_rate(min(rates))}-{fmt_rate(max(rates))})"


def measure(workload: Workload, n: int, rounds: int) -> dict[str, list[float]]:
    for impl in IMPLS:  # warm up: kernel start, caches, allocator
        workload.runs[impl](max(n // 10, 100))
    rates: dict[str, list[float]] = {impl: [] for impl in IMPLS}
    for r in range(rounds):
        order = IMPLS if r % 2 == 0 else IMPLS[::-1]
        for impl in order:
            gc.collect()
            elapsed = workload.runs[impl](n)
            rates[impl].append(n / elapsed)
    return rates


def run_table(quick: bool, rounds: int) -> None:
    started = perf_counter()
    print(
        f"discoro core benchmark: Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, uvloop "
        f"{'installed' if _have_uvloop() else 'not installed'}, "
        f"{'quick' if quick else 'full'} run, {rounds} rounds; median (min-max)\n"
    )
    print("| workload | plain asyncio | discoro generator | discoro async | ratio | goal |")
    print("|---|---|---|---|---|---|")
    spreads = []
    for workload in WORKLOADS:
        n = workload.n_quick if quick else workload.n_full
        rates = measure(workload, n, rounds)
        medians = {impl: statistics.median(rates[impl]) for impl in IMPLS}
        ratio = medians["asyncio"] / min(medians["gen"], medians["async"])
        goal = "met" if ratio <= GOAL else "MISSED"
        for impl in IMPLS:
            spreads.append((max(rates[impl]) - min(rates[impl])) / medians[impl])
        print(
            f"| {workload.title}, {workload.unit} (n={n:,}) | {cell(rates['asyncio'])} "
            f"| {cell(rates['gen'])} | {cell(rates['async'])} | {ratio:.2f}x "
            f"| {goal} (<= {GOAL:g}x) |",
            flush=True,
        )
    print(
        f"\nratio = plain asyncio / the slower discoro style (medians); spread (max-min)/median: "
        f"median {statistics.median(spreads):.0%}, worst {max(spreads):.0%}; "
        f"total {perf_counter() - started:.1f} s"
    )


def _have_uvloop() -> bool:
    try:
        import uvloop  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


# -- profiling -----------------------------------------------------------------------------


def _on_loop(func: Callable[[], Any]) -> None:
    """Run ``func`` on the discoro loop thread and wait until it has run."""
    done = threading.Event()

    def call() -> None:
        func()
        done.set()

    AsynCoro.instance().loop.call_soon_threadsafe(call)
    done.wait()


def run_profile(key: str, style: str, quick: bool, top: int) -> None:
    workload = next(w for w in WORKLOADS if w.key == key)
    n = workload.n_quick if quick else workload.n_full
    run = workload.runs[style]
    run(max(n // 10, 100))  # warm up (and start the kernel)
    profiler = cProfile.Profile()
    if style == "asyncio":
        profiler.enable()
        run(n)
        profiler.disable()
    else:  # the work happens on the kernel's thread: profile that thread
        _on_loop(profiler.enable)
        run(n)
        _on_loop(profiler.disable)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(top)
    print(f"cProfile of {workload.title} ({style}, n={n:,}), by own time:")
    print(out.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (smaller n, 3 rounds)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per measurement")
    parser.add_argument(
        "--profile", choices=[w.key for w in WORKLOADS], help="cProfile one workload instead"
    )
    parser.add_argument("--style", choices=IMPLS, default="gen", help="style for --profile")
    parser.add_argument("--top", type=int, default=25, help="rows of profile to print")
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (3 if args.quick else 7)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    try:
        if args.profile:
            run_profile(args.profile, args.style, args.quick, args.top)
        else:
            run_table(args.quick, rounds)
    finally:
        AsynCoro.instance().terminate()


if __name__ == "__main__":
    main()
