"""Network benchmark, written the way users write programs (issue 9).

Every round starts a real ``discoronode -c 1`` (bound to 127.0.0.1, a random secret, a free
discovery port) and a client process with a private `Scheduler`. The client schedules a
`Computation` and runs its jobs on the node's server process with ``run``; every coroutine
is a seed-API generator (``yield coro.receive()``, ``rc.send(msg)``). Senders send in a
tight loop and give the loop a turn only with ``yield coro.sleep(0)`` every `YIELD_EVERY`
sends, as user programs do (no ``asyncio.sleep(0)``). Workloads:

- round trip: send ``i`` to a remote ``echo`` job, which sends it back; one at a time.
  Reported: median and p99 in microseconds, and the CPU time per round trip of the client
  process and of the server process (``time.process_time``: steadier than wall time on a
  loaded machine, since it does not count waiting for a CPU).
- 100-byte messages: ``n`` of them to a remote ``sink`` job, which answers with its count
  after the last. Reported: messages/s from the first send to the answer, and CPU time per
  message of each process.
- 1 MiB messages: ``n`` sends of one 1 MiB ``bytes`` object to the sink. Reported: MB/s, and
  CPU time per message of each process.
- round trip under bulk: the round trip again while another client coroutine streams 1 MiB
  messages to a second sink on the same server process (it gives the loop a turn every
  `BULK_YIELD_EVERY` sends). Reported: median and p99 of the round trip, and the stream's MB/s.
- slow receiver: ``n`` fresh 10 KB messages to a job that sleeps 2 s before it starts
  receiving. Reported: the client's peak RSS growth during the run (sampled by a thread),
  the peak of the link's queued bytes (sampled after each send) and whether every message
  arrived in order.

The table has the median of the rounds and the spread (min-max).

    python bench/net_bench.py             # full run (3 rounds)
    python bench/net_bench.py --quick     # smoke test (1 round, small n)
    python bench/net_bench.py --only rtt --only rtt_bulk   # some workloads only
    python bench/net_bench.py --only rtt --n 200000 --rounds 1   # a long run, to profile
    DISCORO_LOOP=asyncio python bench/net_bench.py          # asyncio's loop, not uvloop
    python bench/net_bench.py --vs OTHER/src   # paired rounds: this tree, then OTHER, ...
    python bench/net_bench.py --vs A/src --vs B/src   # three-way: this tree, A, B, ...
    python bench/net_bench.py --vs-one-loop    # paired: servers with, then without, a
                                               # transport thread (discoronode --no-net-thread)
    python bench/net_bench.py --vs-tcp         # paired: same-host Unix socket links, then
                                               # TCP ones (DISCORO_LOCAL_LINKS=0): the
                                               # figures of processes on different hosts

Run it inside a private network namespace so nothing else wakes the processes, and not
while the machine is loaded:

    unshare -n sh -c 'ip link set lo up && python bench/net_bench.py'
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

# Benchmark the working tree (or the sources in $NET_BENCH_SRC, to compare two versions).
_SRC = Path(os.environ.get("NET_BENCH_SRC") or Path(__file__).resolve().parents[1] / "src")
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

perf_counter = time.perf_counter
MB = 1 << 20
YIELD_EVERY = 1000
SLOW_SLEEP = 2.0

BULK_YIELD_EVERY = 10

SIZES = {  # workload: (full, quick)
    "rtt": (20_000, 2_000),
    "small": (200_000, 20_000),
    "bulk": (1_000, 100),
    "rtt_bulk": (1_000, 200),
    "slow": (200_000, 20_000),
}


# -- the client program (runs as ``--child``; the jobs run on the node's server process) ----


def echo(client, coro=None):
    cpu = time.process_time()
    while True:
        msg = yield coro.receive()
        if msg is None:
            break
        client.send(msg)
    client.send(time.process_time() - cpu)  # the server process's CPU seconds meanwhile


def sink(client, coro=None):
    while True:
        count = 0
        cpu = None
        while True:
            msg = yield coro.receive()
            if cpu is None:
                cpu = time.process_time()
            if msg is None:
                break
            count += 1
        client.send([count, time.process_time() - cpu])  # and the server's CPU seconds


def streamer(comp, stop, coro=None):
    """Stream 1 MiB messages to a sink job until ``stop`` is set; MB/s."""
    remote = yield comp.run(sink, coro)
    blob = os.urandom(MB)
    t0 = perf_counter()
    sent = 0
    while not stop:
        remote.send(blob)
        sent += 1
        if sent % BULK_YIELD_EVERY == 0:
            yield coro.sleep(0)
    remote.send(None)
    if (yield coro.receive(timeout=300))[0] != sent:
        raise RuntimeError("rtt_bulk: the sink lost messages")
    return sent / (perf_counter() - t0)  # 1 MiB each: MB/s


def close(comp):
    """Close at once, ending the jobs still running (sinks never end by themselves): close()
    waits for them in later versions; trees without close_now end them in close()."""
    return getattr(comp, "close_now", comp.close)()


def slow_sink(client, n, seconds, coro=None):
    yield coro.sleep(seconds)
    expected = 0
    while expected < n:
        msg = yield coro.receive()
        if int.from_bytes(msg[:8], "big") != expected:
            break
        expected += 1
    client.send(expected)


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRss:
    """Samples this process's RSS every 5 ms in a thread; `peak` is the highest seen."""

    def __init__(self) -> None:
        self.start = self.peak = rss()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak - self.start


def queued_bytes(link: Any) -> int:
    """What the link holds unsent (computed by hand for versions without `queued_bytes`)."""
    if hasattr(link, "queued_bytes"):
        return int(link.queued_bytes)
    transport = link.transport
    return int(link.conn.queued) + (transport.get_write_buffer_size() if transport else 0)


def child(port: int, sizes: dict[str, int]) -> None:
    import discoro
    from discoro import Computation, Coro

    discoro.Scheduler(node="127.0.0.1", udp_port=port)
    result: dict[str, Any] = {}

    def client(coro=None):
        comp = Computation([echo, sink, slow_sink])
        if (yield comp.schedule()) != 0:
            raise RuntimeError("schedule failed")
        for _ in range(400):
            if (yield comp.procs()):
                break
            yield coro.sleep(0.05)

        def round_trips(n, key, coro=None):
            remote = yield comp.run(echo, coro)
            times = []
            cpu = time.process_time()
            for i in range(n):
                t0 = perf_counter()
                remote.send(i)
                if (yield coro.receive(timeout=60)) != i:
                    raise RuntimeError("echo out of order")
                times.append(perf_counter() - t0)
            cpu = time.process_time() - cpu
            remote.send(None)
            server_cpu = yield coro.receive(timeout=60)
            times.sort()
            result[f"{key}_median_us"] = statistics.median(times) * 1e6
            result[f"{key}_p99_us"] = times[int(len(times) * 0.99)] * 1e6
            result[f"{key}_cpu_client_us"] = cpu / n * 1e6
            result[f"{key}_cpu_server_us"] = server_cpu / n * 1e6

        if sizes["rtt"]:
            yield from round_trips(sizes["rtt"], "rtt", coro=coro)

        if sizes["rtt_bulk"]:  # round trip while 1 MiB messages stream to the same process
            stop: list[int] = []
            stream = Coro(streamer, comp, stop)
            yield coro.sleep(0.5)  # the stream is up and running
            yield from round_trips(sizes["rtt_bulk"], "rtt_bulk", coro=coro)
            stop.append(1)
            result["rtt_bulk_stream_mb_per_s"] = yield stream.finish()

        # 100-byte messages, then 1 MiB messages, to one sink
        remote = yield comp.run(sink, coro)
        for kind, n, message in (
            ("small", sizes["small"], b"m" * 100),
            ("bulk", sizes["bulk"], os.urandom(MB)),
        ):
            if not n:
                continue
            t0 = perf_counter()
            cpu = time.process_time()
            for i in range(n):
                remote.send(message)
                if i % YIELD_EVERY == YIELD_EVERY - 1:
                    yield coro.sleep(0)
            remote.send(None)
            count, server_cpu = yield coro.receive(timeout=300)
            if count != n:
                raise RuntimeError(f"{kind}: the sink lost messages")
            elapsed = perf_counter() - t0
            if kind == "small":
                result["small_msgs_per_s"] = n / elapsed
                result["small_cpu_client_us"] = (time.process_time() - cpu) / n * 1e6
                result["small_cpu_server_us"] = server_cpu / n * 1e6
            else:
                result["bulk_mb_per_s"] = n * len(message) / MB / elapsed
                result["bulk_cpu_client_us"] = (time.process_time() - cpu) / n * 1e6
                result["bulk_cpu_server_us"] = server_cpu / n * 1e6

        # a fast sender and a slow receiver
        n = sizes["slow"]
        if not n:
            yield close(comp)
            return
        remote = yield comp.run(slow_sink, coro, n, SLOW_SLEEP)
        link = discoro.AsynCoro.instance().network().peers[remote.location].link
        blob = os.urandom(10_000 - 8)
        peak_queued = 0
        memory = PeakRss()
        for i in range(n):
            remote.send(i.to_bytes(8, "big") + blob)  # a fresh 10 KB message each time
            peak_queued = max(peak_queued, queued_bytes(link))
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                yield coro.sleep(0)
        arrived = yield coro.receive(timeout=300)
        result["slow_rss_mb"] = memory.stop() / MB
        result["slow_queued_mb"] = peak_queued / MB
        result["slow_all_in_order"] = float(arrived == n)
        yield close(comp)

    Coro(client).value(600)
    print("JSON", json.dumps(result), flush=True)
    discoro.AsynCoro.instance().finish()


# -- the bench process ------------------------------------------------------------------------


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Program:
    """A child process whose output lines are queued."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self.output: list[str] = []
        self.popen = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.output.append(line.rstrip("\n"))
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = perf_counter() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - perf_counter()))
            except queue.Empty:
                line = None
            if line is None:
                raise RuntimeError(f"no line matching {pattern!r}:\n" + "\n".join(self.output))
            match = re.search(pattern, line)
            if match:
                return match

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


def one_round(
    sizes: dict[str, int],
    source: Path = _SRC,
    loop: str = "",
    net_thread: str = "",
    local_links: str = "",
) -> dict[str, float]:
    env = dict(os.environ, DISCORO_SECRET=secrets.token_hex(16), PYTHONUNBUFFERED="1")
    env["DISCORO_LOOP"] = loop
    if net_thread and net_thread != "option":
        env["DISCORO_NET_THREAD"] = net_thread
    if local_links:
        env["DISCORO_LOCAL_LINKS"] = local_links
    env["PYTHONPATH"] = str(source) + os.pathsep + os.environ.get("PYTHONPATH", "")
    env["NET_BENCH_SRC"] = str(source)  # the client program imports it too
    dest = tempfile.mkdtemp(prefix="discoro-net-bench-")
    port = free_udp_port()
    node = Program(
        [sys.executable, "-m", "discoro.cli.node", "-c", "1", "--force", "-i", "127.0.0.1",
         "-u", str(port), "-n", "bench", "--dest_path", dest,
         *(["--no-net-thread"] if net_thread == "option" else [])],
        env,
    )  # fmt: skip
    try:
        node.expect(r"^discoronode: \d+ processes? ready at ", timeout=60)
        client = Program(
            [sys.executable, os.path.abspath(__file__), "--child", str(port), json.dumps(sizes)],
            env,
        )
        try:
            match = client.expect(r"^JSON (.*)$", timeout=900)
        finally:
            client.stop()
    finally:
        node.stop()
        shutil.rmtree(dest, ignore_errors=True)
    result = dict(json.loads(match[1]))
    if not result:  # the client program failed: say why
        raise RuntimeError("the client measured nothing:\n" + "\n".join(client.output[-40:]))
    return result


ROWS = (  # key, label, format
    ("rtt_median_us", "round trip median (us)", "{:.0f}"),
    ("rtt_p99_us", "round trip p99 (us)", "{:.0f}"),
    ("rtt_cpu_client_us", "round trip: client CPU (us)", "{:.1f}"),
    ("rtt_cpu_server_us", "round trip: server CPU (us)", "{:.1f}"),
    ("small_msgs_per_s", "100-byte messages/s", "{:,.0f}"),
    ("small_cpu_client_us", "100-byte: client CPU per message (us)", "{:.2f}"),
    ("small_cpu_server_us", "100-byte: server CPU per message (us)", "{:.2f}"),
    ("bulk_mb_per_s", "1 MiB messages (MB/s)", "{:,.0f}"),
    ("bulk_cpu_client_us", "1 MiB: client CPU per message (us)", "{:,.0f}"),
    ("bulk_cpu_server_us", "1 MiB: server CPU per message (us)", "{:,.0f}"),
    ("rtt_bulk_median_us", "round trip under 1 MiB stream, median (us)", "{:.0f}"),
    ("rtt_bulk_p99_us", "round trip under 1 MiB stream, p99 (us)", "{:.0f}"),
    ("rtt_bulk_stream_mb_per_s", "  the 1 MiB stream meanwhile (MB/s)", "{:,.0f}"),
    ("slow_rss_mb", "slow receiver: sender RSS growth (MB)", "{:.1f}"),
    ("slow_queued_mb", "slow receiver: peak link queue (MB)", "{:.1f}"),
    ("slow_all_in_order", "slow receiver: all arrived in order", "{:.0f}"),
)


def table(results: list[dict[str, float]], sizes: dict[str, int], source: Path, loop: str) -> str:
    lines = [
        f"discoro net bench: {len(results)} round(s), python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, loop {loop or 'auto'}, load {os.getloadavg()[0]:.1f}, "
        f"source {source}; n = {sizes}",
        f"{'metric':40} {'median':>12} {'spread':>24}",
    ]
    for key, label, form in ROWS:
        values = [r[key] for r in results if key in r]
        if not values:
            continue
        spread = f"{form.format(min(values))}-{form.format(max(values))}"
        lines.append(f"{label:40} {form.format(statistics.median(values)):>12} {spread:>24}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round with small n")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", action="append", choices=sorted(SIZES), help="workload")
    parser.add_argument(
        "--vs", type=Path, action="append", help="another source tree: paired rounds (repeatable)"
    )
    parser.add_argument(
        "--vs-asyncio", action="store_true", help="paired rounds: this tree on asyncio's loop"
    )
    parser.add_argument(
        "--vs-one-loop",
        action="store_true",
        help="paired rounds: this tree with no transport thread (discoronode --no-net-thread)",
    )
    parser.add_argument(
        "--vs-tcp",
        action="store_true",
        help="paired rounds: this tree with TCP links only (DISCORO_LOCAL_LINKS=0)",
    )
    parser.add_argument(
        "--n", type=int, help="messages per selected workload (e.g. a long run to profile)"
    )
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), json.loads(args.child[1]))
        return
    sizes = {name: quick if args.quick else full for name, (full, quick) in SIZES.items()}
    if args.only:
        sizes = {name: n if name in args.only else 0 for name, n in sizes.items()}
    if args.n:
        sizes = {name: args.n if n else 0 for name, n in sizes.items()}
    rounds = 1 if args.quick else args.rounds
    own_loop = os.environ.get("DISCORO_LOOP", "")
    variants = [(_SRC, own_loop, "", "")]  # source, loop, net thread, local links
    for other in args.vs or ():
        variants.append((other.resolve(), own_loop, "", ""))
    if args.vs_asyncio:
        variants.append((_SRC, "asyncio", "", ""))
    if args.vs_one_loop:
        variants.append((_SRC, own_loop, "option", ""))  # discoronode --no-net-thread
    if args.vs_tcp:
        variants.append((_SRC, own_loop, "", "0"))
    results: list[list[dict[str, float]]] = [[] for _ in variants]
    for _ in range(rounds):  # interleaved: each round runs every variant once
        for runs, variant in zip(results, variants, strict=True):
            runs.append(one_round(sizes, *variant))
    for runs, (source, loop, net_thread, local_links) in zip(results, variants, strict=True):
        label = loop + (" DISCORO_NET_THREAD=" + net_thread if net_thread else "")
        if net_thread == "option":
            label = loop + " discoronode --no-net-thread"
        label += " DISCORO_LOCAL_LINKS=" + local_links if local_links else ""
        print(table(runs, sizes, source, label.strip()))
    for index in range(1, len(variants)):  # paired ratios: the first / each other, by round
        title = "ratio (first / second), median of pairs"
        if len(variants) > 2:
            title = f"ratio (first / variant {index + 1}), median of pairs"
        print(f"{title:40} {'median':>12} {'spread':>24}")
        for key, label, _ in ROWS:
            pairs = [
                a[key] / b[key]
                for a, b in zip(results[0], results[index], strict=True)
                if key in a and key in b and b[key]
            ]
            if pairs:
                spread = f"{min(pairs):.2f}-{max(pairs):.2f}"
                lines = f"{label:40} {statistics.median(pairs):>12.2f} {spread:>24}"
                print(lines)


if __name__ == "__main__":
    main()
