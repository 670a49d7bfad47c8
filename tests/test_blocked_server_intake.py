"""A server busy in user code still takes in messages and files (issue 10, D10), on loopback.

A job blocks its server's event loop for `BLOCK` seconds (``time.sleep``, or a pure CPU
loop that never yields) while the client sends that server two files (to the process's
`Location` and to its node's `NodeLocation`) and ``deliver``s numbered messages to another
coroutine there. The server's network runs on a transport thread
(`discoro.net.transport_thread`), so every file is acknowledged (0) and every message
delivered (1) while the job still blocks; once it ends, the other coroutine has every
message, once, in order; the files are in the process's directory; and nothing is reported
lost; the node and its server end cleanly.
"""

from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

import pytest

import discoro
from cluster_programs import run_client

if TYPE_CHECKING:
    from collections.abc import Iterator

    from discoro.cluster.local import LocalCluster

BLOCK = 15.0  # seconds the job blocks its server's loop
MESSAGES = 20

PROGRAM = """
import hashlib
import tempfile

from discoro.net.location import NodeLocation


def blocker(seconds, how, client, coro=None):
    import time
    client.send("BLOCKING")
    end = time.monotonic() + seconds
    if how == "sleep":
        time.sleep(seconds)
    else:
        while time.monotonic() < end:  # never yields
            pass
    client.send("UNBLOCKED")
    yield coro.sleep(0)


def collector(count, client, coro=None):
    got = []
    while len(got) < count:
        msg = yield coro.receive(timeout=120)
        if msg is None:
            break
        got.append(msg)
    extra = yield coro.receive(timeout=1)  # a message taken in twice would show up here
    client.send(("GOT", got, extra))


def checker(names, client, coro=None):
    import hashlib, os
    digests = {}
    for name in names:
        if os.path.exists(name):
            with open(name, "rb") as f:
                digests[name] = hashlib.sha256(f.read()).hexdigest()
    client.send(("FILES", digests))
    yield coro.sleep(0)


def client(coro=None):
    comp = yield from start([blocker, collector, checker], coro, nprocs=1, pulse_interval=1)
    where = (yield comp.procs())[0]
    kernel = discoro.AsynCoro.instance()
    sink = yield comp.run_at(where, collector, MESSAGES, coro)
    job = yield comp.run_at(where, blocker, BLOCK, HOW, coro)
    out("RUNNING", type(sink).__name__, type(job).__name__)
    msg = yield coro.receive(timeout=30)
    out("JOB", msg)
    started = time.monotonic()
    sent = {}
    folder = tempfile.mkdtemp()
    for i, target in enumerate((where, NodeLocation.of(where))):
        path = os.path.join(folder, "blocked-%d-%d.bin" % (os.getpid(), i))
        data = os.urandom(3 * 1024 * 1024 + i)  # more than one chunk
        with open(path, "wb") as f:
            f.write(data)
        sent[os.path.basename(path)] = hashlib.sha256(data).hexdigest()
        result = yield kernel.send_file(target, path, timeout=10)
        out("FILE", i, result, round(time.monotonic() - started, 2))
    for i in range(MESSAGES):
        result = yield sink.deliver(i, timeout=10)
        out("DELIVERED", i, result, round(time.monotonic() - started, 2))
    early = yield coro.receive(timeout=0)
    out("EARLY", early)  # None: the job still blocked when the last ack came
    msg = yield coro.receive(timeout=60)
    out("AFTER", msg)
    msg = yield coro.receive(timeout=60)
    out("COLLECTED", repr(msg))
    names = [name for name in sent if name.endswith("-0.bin")]  # the process's own file
    yield comp.run_at(where, checker, names, coro)
    msg = yield coro.receive(timeout=30)
    out("CHECKED", msg[1] == {name: sent[name] for name in names})
    yield comp.close()
    return "ok"
"""


@pytest.fixture
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=1, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


@pytest.mark.timeout(150)
@pytest.mark.parametrize("how", ["sleep", "cpu"])
def test_a_blocked_server_takes_in_files_and_messages(
    cluster: LocalCluster, udp_port: int, how: str
) -> None:
    header = f"HOW = {how!r}\nBLOCK = {BLOCK!r}\nMESSAGES = {MESSAGES!r}\n"
    with run_client(header + PROGRAM, udp_port, nprocs=1) as client:
        client.expect(r"^SCHEDULE 0$", timeout=30)
        client.expect(r"^RUNNING Coro Coro$", timeout=30)
        client.expect(r"^JOB BLOCKING$", timeout=30)
        client.expect(rf"^DELIVERED {MESSAGES - 1} ", timeout=60)
        client.expect(r"^EARLY ", timeout=10)
        client.expect(r"^DONE ok$", timeout=90)
        assert client.wait(20) == 0
    output = client.output
    files = [line.split() for line in output if line.startswith("FILE ")]
    assert [f[2] for f in files] == ["0", "0"], output  # both acknowledged
    delivered = [line.split() for line in output if line.startswith("DELIVERED ")]
    assert [d[2] for d in delivered] == ["1"] * MESSAGES, output  # each taken in
    assert "EARLY None" in output, output  # ... while the job still blocked
    assert "AFTER UNBLOCKED" in output, output
    (collected,) = [line for line in output if line.startswith("COLLECTED ")]
    got = ast.literal_eval(collected.removeprefix("COLLECTED "))
    assert got == ("GOT", list(range(MESSAGES)), None), output  # all, once, in order
    assert "CHECKED True" in output, output
    lost = [line for line in output if re.match(r"^STATUS (Proc|Node)Disconnected ", line)]
    lost += [line for line in output if re.match(r"^MONITOR \S+ (ProcessLost|PeerOffline)", line)]
    assert not lost, output
    # the server (and its transport thread) ends cleanly with its node
    assert cluster.stop() == 0, cluster.output
    assert not [line for line in cluster.output if "Traceback" in line], cluster.output
