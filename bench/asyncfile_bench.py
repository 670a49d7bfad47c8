"""Throughput of `discoro.asyncfile` against plain asyncio subprocess pipes.

Two workloads, each run in rounds with the implementations interleaved; the median and the
spread (min-max) are printed:

- ``communicate``: N MiB of random bytes through ``cat`` and back (MiB/s);
- ``lines``: ``seq N`` read line by line (lines/s).

discoro runs in a generator coroutine on its kernel thread (the main thread waits in
``value()``); the reference is ``asyncio.create_subprocess_exec`` with its ``communicate`` and
``StreamReader.readline`` on a fresh loop in the main thread. Process start-up is inside the
timing for both (it is the same ``fork``/``exec``).

    python bench/asyncfile_bench.py            # full run
    python bench/asyncfile_bench.py --quick    # smoke test
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import time
from typing import TYPE_CHECKING, Any

import discoro
from discoro import asyncfile

if TYPE_CHECKING:
    from collections.abc import Callable

PIPE = subprocess.PIPE


def discoro_communicate(data: bytes) -> float:
    def body(coro: Any = None) -> Any:
        started = time.perf_counter()
        proc = asyncfile.Popen(["cat"], stdin=PIPE, stdout=PIPE)
        out, _ = yield asyncfile.AsyncPipe(proc).communicate(data)
        assert out == data
        return time.perf_counter() - started

    elapsed: float = discoro.Coro(body).value(timeout=120)
    return elapsed


def asyncio_communicate(data: bytes) -> float:
    async def body() -> float:
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec("cat", stdin=PIPE, stdout=PIPE)
        out, _ = await proc.communicate(data)
        assert out == data
        return time.perf_counter() - started

    return asyncio.run(body())


def discoro_lines(count: int) -> float:
    def body(coro: Any = None) -> Any:
        started = time.perf_counter()
        proc = asyncfile.Popen(["seq", str(count)], stdout=PIPE)
        pipe = asyncfile.AsyncPipe(proc)
        lines = 0
        while (yield pipe.readline()):
            lines += 1
        assert lines == count and proc.wait() == 0
        pipe.close()
        return time.perf_counter() - started

    elapsed: float = discoro.Coro(body).value(timeout=120)
    return elapsed


def asyncio_lines(count: int) -> float:
    async def body() -> float:
        started = time.perf_counter()
        proc = await asyncio.create_subprocess_exec("seq", str(count), stdout=PIPE)
        assert proc.stdout is not None
        lines = 0
        while await proc.stdout.readline():
            lines += 1
        assert lines == count and await proc.wait() == 0
        return time.perf_counter() - started

    return asyncio.run(body())


def measure(
    name: str, unit: str, amount: float, rounds: int, runs: dict[str, Callable[[], float]]
) -> None:
    times: dict[str, list[float]] = {label: [] for label in runs}
    for _ in range(rounds):
        for label, run in runs.items():
            times[label].append(run())
    cells = []
    for label, spent in times.items():
        rates = sorted(amount / t for t in spent)
        cells.append(
            f"{label} {statistics.median(rates):,.0f} ({rates[0]:,.0f}-{rates[-1]:,.0f}) {unit}"
        )
    print(f"{name}: " + "; ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 rounds")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rounds = 2 if args.quick else args.rounds
    mib = 4 if args.quick else 64
    count = 20_000 if args.quick else 500_000
    data = os.urandom(mib * 1024 * 1024)
    measure(
        f"communicate {mib} MiB through cat",
        "MiB/s",
        mib,
        rounds,
        {
            "asyncio": lambda: asyncio_communicate(data),
            "discoro": lambda: discoro_communicate(data),
        },
    )
    measure(
        f"readline of seq {count}",
        "lines/s",
        count,
        rounds,
        {"asyncio": lambda: asyncio_lines(count), "discoro": lambda: discoro_lines(count)},
    )


if __name__ == "__main__":
    main()
