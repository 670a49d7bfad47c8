"""Remote output: what remote coroutines print and log reaches the client (with the
process's location as prefix, in order, at the right level, nothing lost at a job's end),
only when asked, and the server restores its streams on close.

A real local cluster (one node, two server processes) and one client program in a child
process, which runs three computations in turn and prints what it observed; the test waits
for those lines (its stdout and its stderr, tagged ``ERR``, share one pipe).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import pytest

import discoro
from procs import PeerProcess

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.timeout(30)

CLIENT = r"""
import logging, sys
import discoro

port, secret = int(sys.argv[1]), sys.argv[2]
discoro.logger.setLevel(logging.WARNING)  # must not hide remote output


class Tagged:  # this program's stderr, told apart from its stdout on the one pipe
    def write(self, text):
        sys.__stdout__.write("".join(f"ERR {line}\n" for line in text.splitlines()))
        return len(text)

    def flush(self):
        sys.__stdout__.flush()


sys.stderr = Tagged()

def burst(n, coro=None):
    yield coro.sleep(0)
    for i in range(n):
        print(f"burst {i}")
    # ends right after printing: nothing may be lost

def mixed(coro=None):
    import logging, sys
    import discoro
    yield coro.sleep(0)
    print("hello from remote")
    print("oops on stderr", file=sys.stderr)
    logging.getLogger("userlog").error("a log record")
    discoro.logger.info("via discoro logger")
    print("partial", end="")
    return 0

def stream_type(coro=None):
    import sys
    print("silent line")
    yield coro.sleep(0)
    return type(sys.stdout).__name__

received = []  # (location, text) from output_handler, in arrival order

def keep(location, stream, text):
    received.extend((str(location), line) for line in text.splitlines())

def status(coro=None):
    coro.set_daemon()
    while True:
        msg = yield coro.receive()
        if isinstance(msg, discoro.MonitorException):
            where = str(msg.args[0].location)
            lines = [text for loc, text in received if loc == where and text.startswith("burst")]
            expected = [f"burst {i}" for i in range(len(lines))]
            print(f"ENDED {msg.args[0].name} at {where} lines={len(lines)} "
                  f"ordered={lines == expected} value={msg.args[1][1]!r}", flush=True)
            waiter.send(where)

def run_one(coro, remote_output, func, *args, count=1):
    computation = discoro.Computation(
        [burst, mixed, stream_type], status_coro=discoro.Coro(status),
        remote_output=remote_output)
    computation.output_handler = keep
    if (yield computation.schedule()) != 0:
        raise RuntimeError("not scheduled")
    while len((yield computation.procs())) < 2:
        yield coro.sleep(0.05)
    if count == 2:
        jobs = yield computation.run_procs(func, *args)
    else:
        jobs = [(yield computation.run(func, *args))]
    for _ in jobs:  # the status coroutine tells when each has ended
        if (yield coro.receive(timeout=10)) is None:
            raise RuntimeError("a job did not end")
    yield computation.close()

def client(coro=None):
    global waiter
    waiter = coro
    yield from run_one(coro, True, burst, 200, count=2)
    yield from run_one(coro, True, mixed)
    print("PHASE quiet", flush=True)
    before = len(received)
    yield from run_one(coro, False, stream_type)
    print(f"QUIET received={len(received) - before}", flush=True)
    yield from run_one(coro, True, mixed)
    print("CLIENT DONE", flush=True)

discoro.Scheduler(node="127.0.0.1", udp_port=port, secret=secret)
discoro.Coro(client).value(25)
discoro.AsynCoro.instance().finish()
"""

PREFIX = r"\[127\.0\.0\.1:\d+\]"


@pytest.fixture(scope="module")
def run(udp_port: int, cluster_secret: str) -> Iterator[tuple[Any, list[str]]]:
    """The local cluster and the client's whole output (the client ran to its end)."""
    with discoro.local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as cluster:
        with PeerProcess(CLIENT, str(udp_port), cluster_secret) as client:
            client.expect(r"^CLIENT DONE$", timeout=25)
            assert client.wait(10) == 0, client.output
        yield cluster, list(client.output)


def index(output: list[str], pattern: str, start: int = 0) -> int:
    """The index of the first line at or after ``start`` matching ``pattern``."""
    for i in range(start, len(output)):
        if re.search(pattern, output[i]):
            return i
    raise AssertionError(f"no line matching {pattern!r} after line {start}:\n" + "\n".join(output))


def test_remote_print_reaches_the_client_with_the_process_prefix(
    run: tuple[Any, list[str]],
) -> None:
    cluster, output = run
    match = re.search(r"\[(\S+)\]", output[index(output, rf"^{PREFIX} hello from remote$")])
    assert match and match.group(1) in {str(loc) for loc in cluster.procs.values()}
    assert not any("Traceback" in line for line in output), output


def test_lines_printed_just_before_a_job_ends_all_arrive_in_order_before_its_end(
    run: tuple[Any, list[str]],
) -> None:
    cluster, output = run
    ends = [re.search(r"^ENDED burst at (\S+) lines=(\d+) ordered=(\w+)", line) for line in output]
    found = {(m.group(1), m.group(2), m.group(3)) for m in ends if m}
    assert found == {(str(loc), "200", "True") for loc in cluster.procs.values()}, output
    for loc in cluster.procs.values():  # the client's stdout showed them, in order
        shown = [line for line in output if line.startswith(f"[{loc}] burst ")]
        assert shown == [f"[{loc}] burst {i}" for i in range(200)]


def test_stderr_and_log_records_reach_the_clients_stderr_with_their_levels(
    run: tuple[Any, list[str]],
) -> None:
    _, output = run  # the client's discoro.logger was at WARNING: it hides none of these
    start = index(output, rf"^{PREFIX} hello from remote$")
    index(output, rf"^ERR {PREFIX} oops on stderr$", start)
    index(output, rf"^ERR {PREFIX} ERROR userlog: a log record$", start)
    index(output, rf"^ERR {PREFIX} INFO discoro: via discoro logger$", start)
    index(output, rf"^{PREFIX} partial$", start)  # a partial last line, at the end
    shown = [line for line in output if "via discoro logger" in line]
    assert len(shown) == 2  # mixed ran twice: each record shown once


def test_remote_output_false_sends_nothing(run: tuple[Any, list[str]]) -> None:
    _, output = run
    index(output, r"^QUIET received=0$", index(output, r"^PHASE quiet$"))
    assert not any("silent line" in line for line in output), output


def test_close_restores_the_servers_stdout_and_a_later_computation_still_works(
    run: tuple[Any, list[str]],
) -> None:
    _, output = run
    quiet = index(output, r"^PHASE quiet$")
    ended = re.search(r"value='(\w+)'", output[index(output, r"^ENDED stream_type ", quiet)])
    assert ended and ended.group(1) == "TextIOWrapper"  # not the capture of the 1st computation
    index(output, rf"^{PREFIX} hello from remote$", quiet)
