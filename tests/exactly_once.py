"""A client that runs numbered jobs through faults, and the check that each ended once.

`CLIENT_PROGRAM` (argv: own address, udp port, jobs, seconds per job, jobs at a time) runs
a private `Scheduler` and a computation whose job ``work(n, seconds)`` sleeps and returns
``n``. It keeps ``width`` jobs running; a job reported ended other than normally (lost,
written off, its scheduler or process gone) is run again, so every number finishes once.
It prints:

- ``STATUS <name> <info>`` for every status message;
- ``REPORT <n> <coroutine> <location> <kind>`` for every report of a job's end (``kind``:
  the exception type's name, ``StopIteration`` for a normal finish; ``n`` is -1 for a
  probe);
- ``DUPLICATE <coroutine> <kind>`` when a coroutine is reported a second time;
- ``ALL DONE <count>`` once every number has finished.

Commands on stdin: ``RUN <addr>`` runs a probe job on that node (retried for 10 s while no
process there is ready); its report is ``REPORT -1 ...``.

`check_exactly_once` reads the output: every number finished exactly once (one result, the
right one), no coroutine was reported twice.
"""

from __future__ import annotations

import re
from collections import Counter

CLIENT_PROGRAM = """
import sys, threading, time
import discoro
from discoro.cluster.status import status_name

node, udp_port = sys.argv[1], int(sys.argv[2])
total, seconds, width = int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])


def work(n, seconds, coro=None):
    yield coro.sleep(seconds)
    return n


def status(coro=None):
    coro.set_daemon()
    names = {}  # str(job) -> its number
    early = {}  # str(job) -> reports that came before its number
    seen = {}  # str(job) -> how many reports
    while True:
        msg = yield coro.receive()
        if type(msg) is tuple:  # ("named", str(job), n)
            names[msg[1]] = msg[2]
            for report in early.pop(msg[1], []):
                settle(msg[2], *report)
        elif isinstance(msg, discoro.MonitorException):
            job, (kind, value) = msg.args[0], msg.args[1][:2]
            key = str(job)
            seen[key] = seen.get(key, 0) + 1
            if seen[key] > 1:
                print("DUPLICATE", key, kind.__name__, flush=True)
            report = (key, job.location, kind.__name__, value)
            if key in names:
                settle(names[key], *report)
            else:
                early.setdefault(key, []).append(report)
        else:
            print("STATUS", status_name(msg.status), msg.info, flush=True)


def settle(n, key, location, kind, value):
    print("REPORT", n, key, location, kind, flush=True)
    if n >= 0:
        done = kind == "StopIteration" and value == n
        worker.send(("done" if done else "lost", n))


def run_probe(computation, where, coro):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        job = yield computation.run_at(where, work, -1, 0)
        if isinstance(job, discoro.Coro):
            status_coro.send(("named", str(job), -1))
            return
        yield coro.sleep(0.2)
    print("PROBE FAILED", where, computation.last_error, flush=True)


def client(coro=None):
    computation = discoro.Computation([work], status_coro=status_coro)
    print("SCHEDULED", (yield computation.schedule()), flush=True)
    for _ in range(200):  # up to 20 s for discovery and setup
        procs = yield computation.procs()
        if len(procs) >= 2:
            break
        yield coro.sleep(0.1)
    print("PROCS", len(procs), flush=True)
    todo, running, finished = list(range(total)), 0, set()
    while True:
        while todo and running < width:
            n = todo.pop(0)
            job = yield computation.run(work, n, seconds)
            if not isinstance(job, discoro.Coro):
                todo.insert(0, n)  # no process is ready now: try again soon
                break
            status_coro.send(("named", str(job), n))
            running += 1
        msg = yield coro.receive(timeout=0.5)
        if msg is None:
            continue
        if msg[0] == "done":
            running -= 1
            finished.add(msg[1])
            if len(finished) == total:
                print("ALL DONE", len(finished), flush=True)
        elif msg[0] == "lost":
            running -= 1
            todo.insert(0, msg[1])
        elif msg[0] == "command":
            verb, where = msg[1].split()
            if verb == "RUN":
                yield from run_probe(computation, where, coro)


def commands():
    for line in sys.stdin:
        if line.strip():
            worker.send(("command", line.strip()))
    worker.terminate()


scheduler = discoro.Scheduler(node=node, udp_port=udp_port)
status_coro = discoro.Coro(status)
worker = discoro.Coro(client)
threading.Thread(target=commands, daemon=True).start()
worker.value()
"""

REPORT = re.compile(r"^REPORT (-?\d+) (\S+) (\S+) (\w+)$")


def reports(output: list[str]) -> list[tuple[int, str, str, str]]:
    """(number, coroutine, location, kind) of every REPORT line."""
    found = []
    for line in output:
        match = REPORT.match(line)
        if match:
            found.append((int(match[1]), match[2], match[3], match[4]))
    return found


def check_exactly_once(output: list[str], total: int) -> list[tuple[int, str, str, str]]:
    """Assert every job number in ``range(total)`` finished exactly once and no coroutine
    was reported twice; the reports."""
    found = reports(output)
    assert not [line for line in output if line.startswith("DUPLICATE")], output
    per_coro = Counter(coro for _, coro, _, _ in found)
    assert max(per_coro.values(), default=0) <= 1, [c for c, k in per_coro.items() if k > 1]
    results = Counter(n for n, _, _, kind in found if kind == "StopIteration" and n >= 0)
    assert sorted(results) == list(range(total)), (sorted(results), output[-40:])
    assert set(results.values()) == {1}, [n for n, k in results.items() if k > 1]
    return found
