"""Programs written the later versions' way (later-versions 8), in our own words, against a
real node with two servers: each checks what that kind of program prints when it works.

- ``files``: a job not in the components, files sent to a server and results sent back
  (discoro_client4);
- ``pipe``: a helper program shipped as a file component, run by every job from the node
  directory as ``../name`` with ``asyncoro.asyncfile.AsyncPipe`` reached through the alias
  inside shipped code, exit status by ``poll()`` (discoro_client5 and 5_proc);
- ``ticks`` / ``ticks_channel``: two jobs on different servers fed a tick stream, one
  computes a moving average with numpy and reports trend signals, the other saves the ticks
  in its working directory; by messages after ``peer(loc, stream_send=True)``, or through a
  `Channel` with ``deliver('start', n=2) == 2`` (discoro_client6, 6_channel);
- ``node_data`` / ``server_data``: ``disable_nodes`` + ``node_setup`` (a data file sent to
  the node's ``avail_info.location`` first) and ``disable_servers`` + ``server_setup`` (a
  data file sent to each server), then checksum jobs (discoro_client9_node, 9_server).
"""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import discoro
from cluster_programs import run_client

if TYPE_CHECKING:
    from collections.abc import Iterator

    from discoro.cluster.local import LocalCluster


@pytest.fixture(scope="module")
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


COMMON = """
import discoro as asyncoro
from discoro.discoro import DiscoroNodeAllocate, DiscoroNodeAvailInfo


def gather(coro, count, kind=tuple, seconds=30):
    got = []
    deadline = time.monotonic() + seconds
    while len(got) < count and time.monotonic() < deadline:
        msg = yield coro.receive(timeout=1)
        if isinstance(msg, kind) and not hasattr(msg, "status"):
            got.append(msg)
    return got


def wait_procs(comp, coro, count, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        procs = yield comp.procs()
        if len(procs) >= count:
            return procs
        yield coro.sleep(0.05)
    return (yield comp.procs())
"""

# -- discoro_client4: files both ways ----------------------------------------------------

FILES = (
    COMMON
    + """
INPUTS = sys.argv[3].split(",")


def shout(client, coro=None):
    # a job that is not a component: shipped with the run request
    name = yield coro.receive(timeout=20)
    with open(name) as source:
        text = source.read()
    result = "result-" + name
    with open(result, "w") as out_file:
        out_file.write(text.upper())
    status = yield asyncoro.AsynCoro.instance().send_file(client.location, result, timeout=10)
    client.send((name, result, status))


def client(coro=None):
    comp = Computation([], status_coro=Coro(status_proc))
    out("SCHEDULE", (yield comp.schedule()))
    yield from wait_procs(comp, coro, 2)
    kernel = asyncoro.AsynCoro.instance()
    for i, path in enumerate(INPUTS):
        rcoro = yield comp.run(shout, coro)
        sent = yield kernel.send_file(rcoro.location, path, timeout=10)
        if sent < 0:
            out("SEND FAILED", path)
            continue
        rcoro.send(os.path.basename(path))
        name, result, status = (yield from gather(coro, 1))[0]
        if status == 0:
            out("    job %d output is in %s" % (i, os.path.join(kernel.dest_path, result)))
    yield comp.close()
    return "ok"
"""
)


@pytest.mark.timeout(90)
def test_files_sent_both_ways(cluster: LocalCluster, udp_port: int, tmp_path: Path) -> None:
    inputs = []
    for i in range(3):
        path = tmp_path / f"input-{i}.txt"
        path.write_text(f"line of input {i}\n")
        inputs.append(str(path))
    with run_client(FILES.replace("sys.argv[3]", repr(",".join(inputs))), udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=20)
        for i in range(3):
            result = Path(client.expect(rf"^    job {i} output is in (\S+)$", timeout=20)[1])
            assert result.read_text() == f"LINE OF INPUT {i}\n"
            result.unlink()
        client.expect(r"^DONE ok$", timeout=20)


# -- discoro_client5 / 5_proc: a helper program in the node directory -----------------------

HELPER_PROGRAM = """\
import sys
import time

bad = 0
for line in sys.stdin:
    try:
        number = int(line)
    except ValueError:
        bad += 1
        continue
    print("Line %d - current time is %s" % (number, time.asctime()), flush=True)
sys.exit(bad)
"""

PIPE = (
    COMMON
    + """
HELPER = sys.argv[3]


def run_helper(n, client, coro=None):
    import subprocess
    program = os.path.join("..", os.path.basename(HELPER))  # in the node directory
    popen = subprocess.Popen([sys.executable, program], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    pipe = asyncoro.asyncfile.AsyncPipe(popen)  # the module path through the alias
    lines = "".join("%d\\n" % k for k in range(3)) + "not a number\\n"
    yield pipe.write(lines.encode(), full=True)
    pipe.stdin.close()
    while True:
        line = yield pipe.readline()
        if not line:
            break
        client.send(("output", n, line.decode().strip()))
    while pipe.poll() is None:
        yield coro.sleep(0.05)
    client.send(("done", n, pipe.poll(), asyncoro.discoro.MinPulseInterval))


def client(coro=None):
    comp = Computation([run_helper, HELPER], status_coro=Coro(status_proc))
    out("SCHEDULE", (yield comp.schedule()))
    yield from wait_procs(comp, coro, 2)
    for n in range(5):
        rcoro = yield comp.run(run_helper, n, coro)
        out("  job %d processed by %s" % (n, rcoro.location))
    done = 0
    while done < 5:
        msg = (yield from gather(coro, 1))
        if not msg:
            break
        kind, n, *rest = msg[0]
        if kind == "output":
            out("      job %d output: %s" % (n, rest[0]))
        else:
            out("  job %d done: exit status %s, MinPulseInterval %s" % (n, rest[0], rest[1]))
            done += 1
    yield comp.close()
    return "ok"
"""
)


@pytest.mark.timeout(90)
def test_helper_program_from_the_node_directory(
    cluster: LocalCluster, udp_port: int, tmp_path: Path
) -> None:
    helper = tmp_path / "later_helper_proc.py"
    helper.write_text(HELPER_PROGRAM)
    with run_client(PIPE.replace("sys.argv[3]", repr(str(helper))), udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=20)
        for n in range(5):
            client.expect(rf"^  job {n} processed by 127\.0\.0\.1:\d+$", timeout=20)
        client.expect(r"^DONE ok$", timeout=40)
    outputs = [line for line in client.output if "output: Line" in line]
    assert len(outputs) == 15, client.output  # 3 numeric lines x 5 jobs
    assert all("current time is" in line for line in outputs)
    done = [line for line in client.output if " done: " in line]
    assert sorted(done) == [
        f"  job {n} done: exit status 1, MinPulseInterval {discoro.MinPulseInterval}"
        for n in range(5)
    ]
    # the node directory is cleaned of the computation's files at close
    # the node directory is cleaned of the computation's files once its servers closed it
    left = Path(cluster.dest_path) / "discoro" / helper.name
    deadline = time.monotonic() + 20
    while left.exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # the servers close after close() returns: poll, bounded
    assert not left.exists()


# -- discoro_client6 / 6_channel: two cooperating jobs on different servers --------------

TICKS = (
    COMMON
    + """
USE_CHANNEL = sys.argv[3] == "channel"


def averager(client, source, coro=None):
    import numpy
    if source is not None:
        yield source.subscribe(coro)
    window = []
    while True:
        tick = yield coro.receive()
        if tick is None:
            break
        if tick == "start":
            continue
        window.append(tick)
        if len(window) < 5:
            continue
        window = window[-5:]
        mean = float(numpy.mean(window))
        if abs(tick - mean) > 2:
            kind = "high" if tick > mean else "low"
            client.send(("signal", "trend signal at %4d: %s / %.2f" % (tick, kind, mean)))
    client.send(("averager done", None))


def saver(client, source, coro=None):
    if source is not None:
        yield source.subscribe(coro)
    count = 0
    with open("tickdata", "w") as data:
        while True:
            tick = yield coro.receive()
            if tick is None:
                break
            if tick == "start":
                continue
            data.write("%s\\n" % tick)
            count += 1
    client.send(("saver done", (count, os.path.exists("tickdata"))))


def client(coro=None):
    comp = Computation([averager, saver], status_coro=Coro(status_proc))
    out("SCHEDULE", (yield comp.schedule()))
    procs = yield from wait_procs(comp, coro, 2)
    channel = None
    if USE_CHANNEL:
        channel = asyncoro.Channel("tickdata")
    first = yield comp.run_at(procs[0], averager, coro, channel)
    second = yield comp.run_at(procs[1], saver, coro, channel)
    out("DIFFERENT SERVERS", first.location != second.location)
    kernel = asyncoro.AsynCoro.instance()
    out("PEER", (yield kernel.peer(first.location, stream_send=True)))
    ticks = [10] * 10 + [20] * 5 + [10] * 5
    if USE_CHANNEL:
        deadline = time.monotonic() + 20
        while (yield channel.deliver("start", timeout=2, n=2)) != 2:
            if time.monotonic() > deadline:
                out("NO SUBSCRIBERS")
                break
        out("STARTED")
        for tick in ticks + [None]:
            channel.send(tick)
    else:
        for tick in ticks + [None]:
            first.send(tick)
            second.send(tick)
    finished = 0
    while finished < 2:
        got = yield from gather(coro, 1)
        if not got:
            break
        kind, value = got[0]
        if kind == "signal":
            out(value)
        else:
            out(kind, value)
            finished += 1
    yield comp.close()
    return "ok"
"""
)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("style", ["messages", "channel"])
def test_cooperating_jobs_on_different_servers(
    cluster: LocalCluster, udp_port: int, style: str
) -> None:
    with run_client(TICKS.replace("sys.argv[3]", repr(style)), udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=20)
        client.expect(r"^DIFFERENT SERVERS True$", timeout=20)
        client.expect(r"^PEER 0$", timeout=20)
        client.expect(r"^DONE ok$", timeout=30)
    signals = [line for line in client.output if line.startswith("trend signal at")]
    assert "trend signal at   20: high / 12.00" in signals, client.output
    assert all(re.fullmatch(r"trend signal at +\d+: (high|low) / \d+\.\d\d", s) for s in signals)
    assert "saver done (20, True)" in client.output


# -- discoro_client9_node / 9_server: per-node and per-server data files -------------------

NODE_DATA = (
    COMMON
    + """
DATA = sys.argv[3]


def node_setup(data_file, coro=None):
    global DATA_BYTES
    with open(data_file, "rb") as source:
        DATA_BYTES = source.read()
    print('data_file: "%s"' % data_file)
    yield coro.sleep(0)
    return 0


def checksum(alg, client, coro=None):
    import hashlib
    yield coro.sleep(0)
    client.send((alg, hashlib.new(alg, DATA_BYTES).hexdigest()))


def client(coro=None):
    LISTENERS.append(coro)
    windows = DiscoroNodeAllocate(node="*", platform="Windows", cpus=0)
    everything = DiscoroNodeAllocate(node="*", cpus=2)
    comp = Computation([checksum], status_coro=Coro(status_proc),
                       node_allocations=[windows, everything],
                       node_setup=node_setup, disable_nodes=True)
    out("SCHEDULE", (yield comp.schedule()))
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        msg = yield coro.receive(timeout=1)
        if getattr(msg, "status", None) == asyncoro.Scheduler.NodeDiscovered:
            break
    node = msg.info
    out("  Sending %s to %s" % (os.path.basename(DATA), node))
    sent = yield asyncoro.AsynCoro.instance().send_file(node.avail_info.location, DATA,
                                                        overwrite=True, timeout=10)
    out("SENT", sent)
    comp.enable_node(node, os.path.basename(DATA))
    yield from wait_procs(comp, coro, 2)
    LISTENERS.remove(coro)
    algorithms = ["md5", "sha1", "sha256"] * 5
    for alg in algorithms:
        yield comp.run(checksum, alg, coro)
    for alg, digest in (yield from gather(coro, len(algorithms))):
        out("   %ssum for %s: %s" % (alg, os.path.basename(DATA), digest))
    yield comp.close()
    return "ok"
"""
)

SERVER_DATA = (
    COMMON
    + """
DATA = sys.argv[3]


def server_setup(data_file, coro=None):
    global DATA_BYTES
    with open(data_file, "rb") as source:
        DATA_BYTES = source.read()
    print("%s processing %s" % (asyncoro.AsynCoro.instance().location, data_file))
    yield coro.sleep(0)
    return 0


def checksum(alg, client, coro=None):
    import hashlib
    yield coro.sleep(0)
    client.send((alg, hashlib.new(alg, DATA_BYTES).hexdigest()))


def client(coro=None):
    asyncoro.logger.setLevel(asyncoro.Logger.DEBUG)
    LISTENERS.append(coro)
    comp = Computation([checksum], status_coro=Coro(status_proc),
                       server_setup=server_setup, disable_servers=True)
    out("SCHEDULE", (yield comp.schedule()))
    kernel = asyncoro.AsynCoro.instance()
    enabled = 0
    deadline = time.monotonic() + 20
    while enabled < 2 and time.monotonic() < deadline:
        msg = yield coro.receive(timeout=1)
        if getattr(msg, "status", None) == asyncoro.Scheduler.ServerDiscovered:
            out("  Sending %s to %s" % (os.path.basename(DATA), msg.info))
            if (yield kernel.send_file(msg.info, DATA, overwrite=True, timeout=10)) < 0:
                out("SEND FAILED")
                continue
            yield comp.enable_server(msg.info, os.path.basename(DATA))
            enabled += 1
    yield from wait_procs(comp, coro, 2)
    LISTENERS.remove(coro)
    algorithms = ["md5", "sha1", "sha256"] * 5
    for alg in algorithms:
        yield comp.run(checksum, alg, coro)
    for alg, digest in (yield from gather(coro, len(algorithms))):
        out("    %ssum for %s: %s" % (alg, os.path.basename(DATA), digest))
    yield comp.close()
    return "ok"
"""
)


def _digests(data: bytes) -> dict[str, str]:
    return {alg: hashlib.new(alg, data).hexdigest() for alg in ("md5", "sha1", "sha256")}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", ["node", "server"])
def test_setup_with_data_files(
    cluster: LocalCluster, udp_port: int, tmp_path: Path, kind: str
) -> None:
    data = tmp_path / f"later-data-{kind}.bin"
    data.write_bytes(bytes(range(256)) * 40)
    digests = _digests(data.read_bytes())
    program = NODE_DATA if kind == "node" else SERVER_DATA
    with run_client(program.replace("sys.argv[3]", repr(str(data))), udp_port) as client:
        client.expect(r"^SCHEDULE 0$", timeout=20)
        if kind == "node":
            client.expect(rf"^  Sending {data.name} to 127\.0\.0\.1$", timeout=20)
            client.expect(r"^SENT 0$", timeout=20)
            client.expect(rf'data_file: "{data.name}"', timeout=20)
        else:
            # two servers: one may process its file before the other's is sent
            sending = rf"^  Sending {data.name} to 127\.0\.0\.1:\d+$"
            processing = rf"127\.0\.0\.1:\d+ processing {data.name}$"
            client.expect_all(sending, sending, processing, processing, timeout=40)
        client.expect(r"^DONE ok$", timeout=40)
    sums = [line for line in client.output if f"sum for {data.name}: " in line]
    assert len(sums) == 15, client.output
    for line in sums:
        alg = line.split("sum for")[0].strip()
        assert line.endswith(digests[alg]), line
    if kind == "node":
        assert sum('data_file: "' in line for line in client.output) == 1
