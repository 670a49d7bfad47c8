"""Scale benchmark: H hosts (network namespaces on one bridge) of 2 server processes each, a
shared scheduler (the ``discoro`` program) on a host of its own and a client on another.

For each H in ``--hosts`` (default 4, 8, 16) and each of ``--repeat`` rounds, everything is
started fresh and these are measured:

- start: seconds from launching every program at once to the client seeing all 2H server
  processes initialized for its computation (and its parts: every node ready, computation
  scheduled);
- jobs/s: ``--jobs`` short jobs (each returns its argument) issued with ``run`` by
  ``--submitters`` client coroutines at once; finished when every job's MonitorException
  reached the status coroutine; the spread is min / median / max jobs per server process;
- scheduler CPU per job: user+system CPU time of the scheduler process (``/proc/PID/stat``)
  over the job phase, divided by the number of jobs;
- pulse round: with the computation current and every process idle, the scheduler's CPU and
  the bytes through its host's interface over ``--idle`` seconds, per pulse interval (1 s);
  the scheduler's resident memory and open file descriptors then.

Each program is a real process: ``discoronode -c 2`` in each host namespace, the scheduler
program, a client with `Computation`. Traffic stays inside the namespaces this creates
(a private /24 on a bridge in a namespace of its own); everything is stopped and deleted on
exit, Ctrl-C included. Needs root and ``ip`` (iproute2). Run it in a private network namespace:

    unshare -n sh -c 'ip link set lo up && python bench/scale_bench.py --hosts 4,8,16'
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

_ROOT = Path(__file__).resolve().parents[1]
for _path in (_ROOT / "src", _ROOT / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from netns import NODE_PROGRAM, Topology, netns_unavailable  # noqa: E402

if TYPE_CHECKING:
    from procs import PeerProcess

UDP_PORT = 51370  # inside the namespaces only
CLK_TCK = os.sysconf("SC_CLK_TCK")

SCHEDULER_PROGRAM = """
import os, sys
print("PID", os.getpid(), flush=True)
from discoro.cli.scheduler import main
sys.exit(main(sys.argv[1:]))
"""

# argv: own address, udp port, expected processes, jobs, submitters, idle seconds.
CLIENT_PROGRAM = """
import collections, statistics, sys, time
import discoro

node, port = sys.argv[1], int(sys.argv[2])
nprocs, njobs, nsub = map(int, sys.argv[3:6])
idle = float(sys.argv[6])
started = float(sys.stdin.readline())  # the bench's launch time (wall clock)
ended = collections.Counter()  # server process -> jobs ended there


def job(n, coro=None):
    return n
    yield


def status(coro=None):
    coro.set_daemon()
    while True:
        msg = yield coro.receive()
        if isinstance(msg, discoro.MonitorException):
            ended[str(msg.args[0].location)] += 1
            if sum(ended.values()) == njobs:
                waiter.send("all ended")


def submit(comp, first, count, coro=None):
    for n in range(first, first + count):
        rcoro = yield comp.run(job, n)
        if not isinstance(rcoro, discoro.Coro):
            print("RUN FAILED", rcoro, flush=True)
    return count


def client(coro=None):
    global waiter
    waiter = coro
    comp = discoro.Computation([job], status_coro=discoro.Coro(status))
    if (yield comp.schedule()) != 0:
        print("NOT SCHEDULED", flush=True)
        return
    print("SCHEDULED", time.time() - started, flush=True)
    while len((yield comp.procs())) < nprocs:
        yield coro.sleep(0.05)
    print("INITIALIZED", time.time() - started, flush=True)
    print("IDLE", flush=True)
    yield coro.sleep(idle)  # the bench measures a pulse round meanwhile
    print("JOBS", flush=True)
    t0 = time.perf_counter()
    share = njobs // nsub
    subs = [discoro.Coro(submit, comp, i * share, share + (njobs % nsub if i == nsub - 1 else 0))
            for i in range(nsub)]
    for sub in subs:
        yield sub.finish()
    reason = yield coro.receive(timeout=600)
    elapsed = time.perf_counter() - t0
    counts = sorted(ended.values()) + [0] * (nprocs - len(ended))
    print("JOBS_DONE", reason == "all ended", elapsed, min(counts), statistics.median(counts),
          max(counts), flush=True)
    yield comp.close()


discoro.AsynCoro(node=node, udp_port=port)
discoro.Coro(client).value()
print("CLIENT EXIT", flush=True)
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def interface_bytes(lan: Topology, index: int) -> int:
    """Bytes received plus sent by host ``index``'s interface."""
    out = subprocess.run(
        ["ip", "netns", "exec", lan.hosts[index], "cat", "/proc/net/dev"],
        capture_output=True, text=True, timeout=10, check=True,
    ).stdout  # fmt: skip
    for line in out.splitlines():
        name, _, rest = line.partition(":")
        if name.strip() == "eth0":
            numbers = rest.split()
            return int(numbers[0]) + int(numbers[8])
    raise RuntimeError("no eth0 in " + lan.hosts[index])


def start_node(lan: Topology, index: int, dest: str) -> PeerProcess:
    """``discoronode -c 2`` on host ``index``."""
    address = lan.addresses[index]
    args = ["-c", "2", "--force", "-i", address, "-u", str(UDP_PORT), "-n", f"node{index}"]
    return lan.spawn(index, NODE_PROGRAM, *args, "--dest_path", dest)


def one_round(hosts: int, jobs: int, submitters: int, idle: float) -> dict[str, float]:
    dest = tempfile.mkdtemp(prefix="discoro-scale-")
    with Topology(hosts + 2) as lan:
        sched_index, client_index = hosts, hosts + 1
        started = time.time()
        nodes = [start_node(lan, i, f"{dest}/node{i}") for i in range(hosts)]
        scheduler = lan.spawn(
            sched_index, SCHEDULER_PROGRAM, "-i", lan.addresses[sched_index], "-u", str(UDP_PORT)
        )
        client = lan.spawn(
            client_index, CLIENT_PROGRAM, lan.addresses[client_index], str(UDP_PORT),
            str(2 * hosts), str(jobs), str(submitters), str(idle),
        )  # fmt: skip
        client.write(repr(started))
        pid = int(scheduler.expect(r"^PID (\d+)$", timeout=60)[1])
        for node in nodes:
            node.expect(r"^discoronode: 2 processes ready at ", timeout=120)
        nodes_ready = time.time() - started
        scheduled = float(client.expect(r"^SCHEDULED (\S+)$", timeout=120)[1])
        initialized = float(client.expect(r"^INITIALIZED (\S+)$", timeout=120)[1])
        client.expect(r"^IDLE$", timeout=10)
        time.sleep(idle / 5)  # let the first pulses after initialization pass
        cpu0, bytes0, t0 = cpu_seconds(pid), interface_bytes(lan, sched_index), time.monotonic()
        client.expect(r"^JOBS$", timeout=idle + 30)
        cpu1, bytes1, t1 = cpu_seconds(pid), interface_bytes(lan, sched_index), time.monotonic()
        idle_rss, idle_fds = rss_mib(pid), open_fds(pid)
        done = client.expect(r"^JOBS_DONE (\S+) (\S+) (\S+) (\S+) (\S+)$", timeout=900)
        cpu2 = cpu_seconds(pid)
        if done[1] != "True":
            raise RuntimeError(f"not every job ended: {client.output[-20:]}")
        elapsed = float(done[2])
        return {
            "nodes ready s": nodes_ready,
            "scheduled s": scheduled,
            "all initialized s": initialized,
            "jobs/s": jobs / elapsed,
            "jobs/proc min": float(done[3]),
            "jobs/proc median": float(done[4]),
            "jobs/proc max": float(done[5]),
            "sched CPU us/job": (cpu2 - cpu1) / jobs * 1e6,
            "pulse round sched CPU ms": (cpu1 - cpu0) / (t1 - t0) * 1e3,
            "pulse round KiB": (bytes1 - bytes0) / (t1 - t0) / 1024,
            "sched RSS MiB (idle)": idle_rss,
            "sched open fds (idle)": float(idle_fds),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="4,8,16", help="host counts, comma-separated")
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--submitters", type=int, default=32, help="client coroutines running jobs")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle pulses measured")
    args = parser.parse_args()
    if args.idle < 2:
        parser.error("--idle must be at least 2 seconds")
    why_not = netns_unavailable()
    if why_not is not None:
        print(f"scale_bench: {why_not}", file=sys.stderr)
        return 2
    os.environ.setdefault("DISCORO_SECRET", secrets.token_hex(16))
    counts = [int(h) for h in args.hosts.split(",")]
    print(f"# scale_bench: {args.jobs} jobs, {args.submitters} submitters, {args.repeat} rounds; "
          f"load {os.getloadavg()[0]:.2f} at start")  # fmt: skip
    results: dict[int, list[dict[str, float]]] = {}
    for hosts in counts:
        results[hosts] = [
            one_round(hosts, args.jobs, args.submitters, args.idle) for _ in range(args.repeat)
        ]
    metrics = list(results[counts[0]][0])
    header = f"{'metric':<26}" + "".join(f"{f'{h} hosts':>26}" for h in counts)
    print(header)
    print("-" * len(header))
    for metric in metrics:
        cells = []
        for hosts in counts:
            values = [r[metric] for r in results[hosts]]
            cell = f"{statistics.median(values):.4g} [{min(values):.3g}-{max(values):.3g}]"
            cells.append(f"{cell:>26}")
        print(f"{metric:<26}" + "".join(cells))
    print(f"# load {os.getloadavg()[0]:.2f} at end; median [min-max] of {args.repeat} rounds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
