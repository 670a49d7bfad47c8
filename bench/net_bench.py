"""Network benchmark: two real discoro processes talking over loopback.

The benchmark process is one peer; a child process (the "echo/sink" peer) is the other. Both
run on 127.0.0.1 and share a random secret made for the run. Workloads:

- ping-pong: the bench coroutine sends ``(itself, i)`` to the child's ``echo`` coroutine,
  which sends ``i`` back; one round trip at a time. Reported: median and p99 round-trip time
  in microseconds.
- one-way small messages: ``n`` ints sent to the child's ``sink`` coroutine, then a
  terminator; the sink answers with the count when the terminator arrives. Reported:
  messages/s from the first send to the answer.
- bulk: ``n`` messages of 1 MB ``bytes`` to the sink, then the terminator. Reported: MB/s.

The sender gives the loop a turn (``await asyncio.sleep(0)``) every 1,000 small messages and
after every 1 MB message, as a real producer would, so frames go out while it keeps
producing. Wall time is taken inside the bench process's event loop.

Each round runs every workload once; the table shows the median of the rounds with the
spread (min-max). ``--profile server`` (or ``client``) runs one round with cProfile enabled
on that process's loop thread and prints the top functions.

    python bench/net_bench.py                    # full run
    python bench/net_bench.py --quick            # smoke test, a few seconds
    python bench/net_bench.py --profile server   # where the child spends its time
    python bench/net_bench.py --vs /path/to/other/src   # side by side with another version

``--vs SRC`` runs each round twice, alternating, as separate bench processes: once with this
tree's sources and once with SRC (e.g. a checkout of the previous wire, without records), and
prints both with their ratio: pairing rounds keeps the ratio honest on a noisy machine.

Loopback numbers on a small VM are bimodal: they depend on whether the two processes share
a CPU. ``--pin`` puts each on its own CPU for steadier numbers. Run it inside a private
network namespace so nothing else wakes the processes:

    unshare -n sh -c 'ip link set lo up && python bench/net_bench.py'
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Benchmark the working tree (or the sources in $NET_BENCH_SRC, to compare two versions).
_SRC = Path(os.environ.get("NET_BENCH_SRC") or Path(__file__).resolve().parents[1] / "src")
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

from discoro import AsynCoro, Coro, Location  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

perf_counter = time.perf_counter
perf_counter_ns = time.perf_counter_ns
MB = 1 << 20
TIMEOUT = 60.0

CHILD = r"""
import cProfile, io, os, pstats, sys
if os.environ.get("NET_BENCH_CPU"):
    os.sched_setaffinity(0, {int(os.environ["NET_BENCH_CPU"])})
from discoro import AsynCoro, Coro

kernel = AsynCoro(node="127.0.0.1", name="bench-peer", discover=False)
profile_to = os.environ.get("NET_BENCH_PROFILE")
profiler = cProfile.Profile() if profile_to else None


def echo(coro=None):
    coro.register("echo")
    while True:
        msg = yield coro.receive()
        if msg is None:
            break
        msg[0].send(msg[1])


def sink(coro=None):
    coro.register("sink")
    while True:
        count = 0
        while True:
            msg = yield coro.receive()
            if type(msg) is tuple:
                break
            count += 1
        msg[1].send(count)


def profiling(on):
    if on:
        profiler.enable()
    else:
        profiler.disable()
        profiler.dump_stats(profile_to)


Coro(echo)
Coro(sink)
if profiler is not None:
    kernel.call(profiling, True)
print("LOCATION", kernel.location.addr, kernel.location.port, flush=True)
for line in sys.stdin:
    if line.strip() == "quit":
        break
if profiler is not None:
    import threading
    done = threading.Event()
    kernel.call(lambda: (profiling(False), done.set()))
    done.wait(10)
print("BYE", flush=True)
os._exit(0)
"""


# -- workloads (async coroutines on the bench kernel's loop) -----------------------------------


async def pingpong(echo: Coro, n: int, coro: Any = None) -> list[int]:
    times: list[int] = []
    receive = coro.receive
    send = echo.send
    for i in range(n):
        t0 = perf_counter_ns()
        send((coro, i))
        got = await receive(TIMEOUT)
        times.append(perf_counter_ns() - t0)
        if got != i:
            raise RuntimeError(f"ping-pong: expected {i}, got {got!r}")
    return times


async def oneway(sink: Coro, n: int, coro: Any = None) -> float:
    send = sink.send
    t0 = perf_counter()
    for i in range(n):
        send(i)
        if i % 1000 == 999:
            await asyncio.sleep(0)
    send(("end", coro))
    count = await coro.receive(TIMEOUT)
    elapsed = perf_counter() - t0
    if count != n:
        raise RuntimeError(f"one-way: sink counted {count!r} of {n}")
    return elapsed


async def bulk(sink: Coro, n: int, coro: Any = None) -> float:
    block = os.urandom(MB)
    send = sink.send
    t0 = perf_counter()
    for _ in range(n):
        send(block)
        await asyncio.sleep(0)
    send(("end", coro))
    count = await coro.receive(TIMEOUT)
    elapsed = perf_counter() - t0
    if count != n:
        raise RuntimeError(f"bulk: sink counted {count!r} of {n}")
    return elapsed


async def locate(name: str, location: Location, coro: Any = None) -> Coro:
    found = await Coro.locate(name, location, timeout=10)
    if found is None:
        raise RuntimeError(f"cannot locate {name!r} at {location}")
    return found


async def with_profile(profiler: Any, work: Any, coro: Any = None) -> Any:
    """Run ``work`` (an awaitable) with ``profiler`` enabled on this (the loop) thread."""
    profiler.enable()
    try:
        return await work
    finally:
        profiler.disable()


# -- running ----------------------------------------------------------------------------------


@dataclass
class Sizes:
    pingpong: int
    oneway: int
    bulk: int
    rounds: int


FULL = Sizes(pingpong=20_000, oneway=200_000, bulk=300, rounds=5)
QUICK = Sizes(pingpong=2_000, oneway=20_000, bulk=30, rounds=2)


class Child:
    """The echo/sink peer process."""

    def __init__(self, secret: str, profile_to: str | None, cpu: int | None) -> None:
        env = dict(os.environ)
        if cpu is not None:
            env["NET_BENCH_CPU"] = str(cpu)
        env["PYTHONPATH"] = str(_SRC) + os.pathsep + env.get("PYTHONPATH", "")
        env["DISCORO_SECRET"] = secret
        if profile_to:
            env["NET_BENCH_PROFILE"] = profile_to
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 3 or line[0] != "LOCATION":
            self.proc.kill()
            raise RuntimeError(f"child did not start: {line}")
        self.location = Location(line[1], int(line[2]))

    def stop(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.stdout.readline()
            self.proc.wait(15)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(5)


def run_round(echo: Coro, sink: Coro, sizes: Sizes, wrap: Callable[[Any], Any]) -> dict[str, float]:
    def run(func: Any, *args: Any) -> Any:
        async def body(coro: Any = None) -> Any:
            return await wrap(func(*args, coro=coro))

        return Coro(body).value(TIMEOUT * 2)

    result = dict.fromkeys(("rtt_median", "rtt_p99", "msgs", "mbps"), float("nan"))
    if sizes.pingpong:
        times = sorted(run(pingpong, echo, sizes.pingpong))
        result["rtt_median"] = times[len(times) // 2] / 1000
        result["rtt_p99"] = times[min(len(times) - 1, int(len(times) * 0.99))] / 1000
    if sizes.oneway:
        result["msgs"] = sizes.oneway / run(oneway, sink, sizes.oneway)
    if sizes.bulk:
        result["mbps"] = sizes.bulk / run(bulk, sink, sizes.bulk)
    return result


@dataclass
class Metric:
    key: str
    label: str
    unit: str
    goal: str
    original: str
    met: Callable[[float], bool] | None


METRICS = [
    Metric(
        "rtt_median",
        "ping-pong round trip, median",
        "us",
        "<= 100 us",
        "~400 us",
        lambda v: v <= 100,
    ),
    Metric("rtt_p99", "ping-pong round trip, p99", "us", "-", "-", None),
    Metric(
        "msgs",
        "one-way small messages",
        "msgs/s",
        ">= 100,000/s",
        "~4,000/s",
        lambda v: v >= 100_000,
    ),
    Metric("mbps", "1 MB messages", "MB/s", ">= 1,500 MB/s", "~900 MB/s", lambda v: v >= 1_500),
]


def fmt(value: float, unit: str) -> str:
    if unit == "us":
        return f"{value:.0f}"
    if unit == "msgs/s":
        return f"{value / 1000:.1f}k"
    return f"{value:,.0f}"


def table(results: list[dict[str, float]]) -> str:
    lines = [
        "| metric | discoro | goal | original asyncoro | met? |",
        "|---|---|---|---|---|",
    ]
    for m in METRICS:
        values = [r[m.key] for r in results if r[m.key] == r[m.key]]  # not NaN
        if not values:
            continue
        median = statistics.median(values)
        cell = (
            f"{fmt(median, m.unit)} {m.unit} "
            f"({fmt(min(values), m.unit)}-{fmt(max(values), m.unit)})"
        )
        met = "-" if m.met is None else ("met" if m.met(median) else "MISSED")
        lines.append(f"| {m.label} | {cell} | {m.goal} | {m.original} | {met} |")
    return "\n".join(lines)


def print_profile(path: str, title: str, limit: int = 30) -> None:
    import pstats

    print(f"\n== cProfile: {title} (by own time) ==")
    stats = pstats.Stats(path)
    stats.strip_dirs().sort_stats("tottime").print_stats(limit)


def side_by_side(argv: list[str], other: str, rounds: int) -> None:
    """Alternate rounds of this tree and of ``other`` (sources), each in its own process."""
    here = str(Path(__file__).resolve().parents[1] / "src")
    results: dict[str, list[dict[str, float]]] = {"this": [], "vs": []}
    for index in range(rounds):
        for name, src in (("this", here), ("vs", other)):
            env = dict(os.environ, NET_BENCH_SRC=src)
            command = [sys.executable, __file__, *argv, "--rounds", "1", "--json"]
            out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
            results[name].append(json.loads(line[len("RESULT ") :]))
            print(f"round {index + 1}/{rounds} {name}: {results[name][-1]}", flush=True)
    print(f"\nthis tree: {here}\nvs: {other}\n")
    print("| metric | this tree | vs | this / vs (median of paired rounds) |")
    print("|---|---|---|---|")
    for m in METRICS:
        pairs = [
            (a[m.key], b[m.key])
            for a, b in zip(results["this"], results["vs"], strict=True)
            if a[m.key] == a[m.key] and b[m.key] == b[m.key]
        ]
        if not pairs:
            continue
        cells = []
        for values in ([a for a, _ in pairs], [b for _, b in pairs]):
            median = statistics.median(values)
            low, high = fmt(min(values), m.unit), fmt(max(values), m.unit)
            cells.append(f"{fmt(median, m.unit)} {m.unit} ({low}-{high})")
        ratio = statistics.median(a / b for a, b in pairs if b)
        print(f"| {m.label} | {cells[0]} | {cells[1]} | {ratio:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--rounds", type=int, help="rounds (default 5, quick 2)")
    parser.add_argument("--profile", choices=("server", "client"), help="cProfile one round")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin this process to CPU 0 and the child to CPU 1 (steadier numbers)",
    )
    parser.add_argument(
        "--only", choices=("pingpong", "oneway", "bulk"), help="run one workload only"
    )
    parser.add_argument("--vs", metavar="SRC", help="compare with the sources in SRC")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.vs:
        argv = ["--quick"] * args.quick + ["--pin"] * args.pin
        if args.only:
            argv += ["--only", args.only]
        side_by_side(argv, args.vs, args.rounds or (QUICK if args.quick else FULL).rounds)
        return
    sizes = QUICK if args.quick else FULL
    if args.only:
        for name in ("pingpong", "oneway", "bulk"):
            if name != args.only:
                setattr(sizes, name, 0)
    if args.rounds:
        sizes.rounds = args.rounds
    if args.profile:
        sizes.rounds = 1

    secret = secrets.token_hex(16)
    profile_dir = tempfile.mkdtemp(prefix="net_bench_")
    server_profile = os.path.join(profile_dir, "server.prof") if args.profile == "server" else None
    cpu = None
    if args.pin and len(os.sched_getaffinity(0)) >= 2:
        first, second = sorted(os.sched_getaffinity(0))[:2]
        os.sched_setaffinity(0, {first})
        cpu = second
    child = Child(secret, server_profile, cpu)
    kernel: AsynCoro | None = None
    loop_name = "?"
    try:
        kernel = AsynCoro(node="127.0.0.1", name="bench", secret=secret, discover=False)
        echo = Coro(locate, "echo", child.location).value(TIMEOUT)
        sink = Coro(locate, "sink", child.location).value(TIMEOUT)
        if echo is None or sink is None:
            raise SystemExit(f"cannot reach the child's echo/sink at {child.location}")
        client_profiler = None
        wrap: Callable[[Any], Any] = lambda work: work  # noqa: E731
        if args.profile == "client":
            import cProfile

            client_profiler = cProfile.Profile()
            wrap = lambda work: with_profile(client_profiler, work)  # noqa: E731
        results = []
        for index in range(sizes.rounds):
            result = run_round(echo, sink, sizes, wrap)
            results.append(result)
            if args.json:
                print("RESULT", json.dumps(result), flush=True)
                continue
            print(
                f"round {index + 1}/{sizes.rounds}: rtt median {result['rtt_median']:.0f} us, "
                f"p99 {result['rtt_p99']:.0f} us, {result['msgs']:,.0f} msgs/s, "
                f"{result['mbps']:,.0f} MB/s",
                flush=True,
            )
    finally:
        if kernel is not None:
            loop_name = type(kernel.loop).__module__
            kernel.terminate()  # before the child goes, so nothing re-dials it
        child.stop()
    if args.json:
        return
    print(
        f"\n{time.strftime('%Y-%m-%d')}; {os.cpu_count()} cores; Python "
        f"{platform.python_version()}; loop {loop_name}; "
        f"n = {sizes.pingpong:,} round trips, {sizes.oneway:,} messages, "
        f"{sizes.bulk} x 1 MB; {sizes.rounds} round(s)"
        f"{'; pinned to one CPU each' if cpu is not None else ''}\n"
    )
    print(table(results))
    if server_profile:
        print_profile(server_profile, "echo/sink process, loop thread")
    if client_profiler is not None:
        path = os.path.join(profile_dir, "client.prof")
        client_profiler.dump_stats(path)
        print_profile(path, "bench process, loop thread")


if __name__ == "__main__":
    main()
