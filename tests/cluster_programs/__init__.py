"""Client programs for the cluster tests.

Each test builds a client program from `PRELUDE` plus its own body and runs it as a separate
Python process (`PeerProcess`), so the user's classes and functions live in that program's
``__main__``, as in real client programs. The program prints what the test checks:
``STATUS <name> <info>`` and ``MONITOR <coro> <exception name> <value repr>`` lines from its
status coroutine, and whatever lines its own ``client`` coroutine prints.
"""

from __future__ import annotations

import textwrap

from procs import PeerProcess

PRELUDE = r'''
import os
import sys
import time

import discoro
from discoro import Computation, Coro, Location, MonitorException, Scheduler
from discoro.cluster.status import status_name

PORT = int(sys.argv[1])
NPROCS = int(sys.argv[2])
LISTENERS = []  # coroutines that also get every status message
STATUS_COROS = []  # every status_proc, flushed before the program says DONE


def out(*args):
    print(*args, flush=True)


def status_proc(coro=None):
    coro.set_daemon()
    STATUS_COROS.append(coro)
    while True:
        msg = yield coro.receive()
        if isinstance(msg, tuple) and msg[:1] == ("flush",):
            msg[1].send("flushed")  # everything that came before has been printed
            continue
        if isinstance(msg, MonitorException):
            kind, value = msg.args[1]
            tb = getattr(msg, "remote_traceback", None)
            text = repr(value) + (" TB " + tb if tb else "")
            text = text.replace("\n", " ").replace("\\n", " ")
            out("MONITOR", msg.args[0], kind.__name__, text)
        elif isinstance(msg, discoro.DiscoroNodeAvailInfo):
            pass  # a node's availability, with its pulses (later versions)
        else:
            out("STATUS", status_name(msg.status), msg.info)
        for listener in LISTENERS:
            listener.send(msg)


def start(components, coro, nprocs=None, **options):
    """Schedule a computation and wait until ``nprocs`` processes are initialized."""
    comp = Computation(components, status_coro=Coro(status_proc), **options)
    result = yield comp.schedule()
    out("SCHEDULE", result)
    if result != 0:
        return comp
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        procs = yield comp.procs()
        if len(procs) >= (nprocs or NPROCS):
            break
        yield coro.sleep(0.05)
    return comp


def flush_status(coro=None):
    """Wait until each status coroutine has printed what its mailbox holds (a daemon:
    the kernel's end would drop it)."""
    for status in list(STATUS_COROS):
        status.send(("flush", coro))
        yield coro.receive(timeout=10)


def main(client, private=True):
    if private:
        Scheduler(node="127.0.0.1", udp_port=PORT)
    else:
        discoro.AsynCoro(node="127.0.0.1", udp_port=PORT)
    value = Coro(client).value(60)
    Coro(flush_status).value(30)
    out("DONE", value)
    discoro.AsynCoro.instance().finish()
'''


def run_client(
    body: str,
    udp_port: int,
    nprocs: int = 2,
    private: bool = True,
    env: dict[str, str] | None = None,
    cwd: str | None = None,
) -> PeerProcess:
    """Start a client program: `PRELUDE`, ``body`` (which defines ``client(coro=None)``)
    and a call of ``main``."""
    program = PRELUDE + "\n" + textwrap.dedent(body) + f"\n\nmain(client, private={private})\n"
    return PeerProcess(program, str(udp_port), str(nprocs), env=env, cwd=cwd)
