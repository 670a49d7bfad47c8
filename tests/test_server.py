"""A real server process (``discoro_proc``) driven by a fake scheduler in the test process
with the protocol messages: setup, run, close, quit (reference 3.6, 3.7)."""

from __future__ import annotations

import os
import queue
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cloudpickle
import pytest

from discoro import AsynCoro, Coro, Location, MonitorException
from discoro.cluster import protocol as p
from discoro.cluster.constants import SERVER_NAME
from discoro.errors import NotACoroutineFunction
from discoro.net.handlers import exit_notice
from netpeers import connect, run
from procs import PeerProcess

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# deadlines are generous: a server process starts and answers slowly on a loaded machine
# under coverage, and a deadline that passes there is a failure, not a finding
pytestmark = pytest.mark.timeout(120)

# The node's server program, with a manual clock for the server's deadlines (pulses, zombie
# period): a line ``ADVANCE <seconds>`` on stdin moves it and is answered ``CLOCK <now>``.
SERVER = f"""
import sys, threading
sys.path.insert(0, {str(Path(__file__).resolve().parent)!r})
from testing import ManualClock
import discoro.cluster.server as server_module
import discoro.cluster.server_main as server_main  # the name procdir knows servers by

clock = ManualClock()

class ServerWithManualClock(server_module.Server):
    def __init__(self, kernel, workdir, **options):
        super().__init__(kernel, workdir, clock=clock, **options)

server_module.Server = ServerWithManualClock

def advance():
    for line in sys.stdin:
        if line.startswith("ADVANCE "):
            clock.advance(float(line.split()[1]))
            sys.stdout.write("CLOCK %s\\n" % clock())  # one write: the server prints too
            sys.stdout.flush()

threading.Thread(target=advance, daemon=True).start()
sys.exit(server_main.main(sys.argv[1:]))
"""

# The client's program, as if it were its __main__: shipped by value.
CLIENT_MAIN = """
data = None
def setup(value, coro=None):
    global data
    data = value
    yield coro.sleep(0)
    return data
def report(client, coro=None):
    client.send(("data", data, os.getcwd()))
    yield coro.sleep(0)
def waiter(client, coro=None):
    client.send(("waiting", coro))
    msg = yield coro.receive()
    client.send(("got", msg))
def not_a_generator(x):
    return x
def make_adder(n):
    def adder(client, coro=None):
        client.send(("sum", data + n))
        yield coro.sleep(0)
    return adder
"""


def client_main() -> dict[str, Any]:
    names: dict[str, Any] = {"__name__": "__main__"}
    exec(CLIENT_MAIN, names)
    return names


def passed_on(message: Any) -> list[Any]:
    """What a scheduler passes on from ``message`` to a router and a status coroutine in its
    own process (issue 9: one message from the server carries both)."""
    if isinstance(message, p.JobStarted) and message.reply_to is not None:
        return [
            p.RunResult(
                message.rid,
                message.coro,
                None,
                message.fanout,
                message.location,
                message.incarnation,
            )
        ]
    if isinstance(message, p.JobDone) and message.exit is not None:
        return [exit_notice(*message.exit)]
    return []


def unpacked(message: Any) -> list[Any]:
    """The reports in ``message``: each `JobDone` of a `JobsDone`, a `JobStarted` that rode
    in a `JobDone` before it (issue 9)."""
    reports = list(message.dones) if isinstance(message, p.JobsDone) else [message]
    out: list[Any] = []
    for report in reports:
        started = getattr(report, "started", None) if isinstance(report, p.JobDone) else None
        out += [started, report] if started is not None else [report]
    return out


class Inbox:
    """A coroutine in the test process that stands for the scheduler, the client's router and
    its status coroutine: it queues what it receives for the test thread (and what the
    scheduler would pass on from it: `passed_on`)."""

    def __init__(self) -> None:
        self.queue: queue.Queue[Any] = queue.Queue()
        self.stash: list[Any] = []
        self.coro = Coro(self._collect)

    async def _collect(self, coro: Any = None) -> None:
        coro.set_daemon()
        while True:
            message = await coro.receive()
            for one in unpacked(message):  # as the scheduler takes them
                self.queue.put(one)
                for other in passed_on(one):
                    self.queue.put(other)

    def expect(
        self, kind: Any, where: Callable[[Any], bool] = lambda m: True, timeout: float = 30
    ) -> Any:
        for i, message in enumerate(self.stash):
            if isinstance(message, kind) and where(message):
                return self.stash.pop(i)
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                message = self.queue.get(timeout=remaining)
            except queue.Empty:
                break
            if isinstance(message, kind) and where(message):
                return message
            self.stash.append(message)
        raise AssertionError(f"no {kind} within {timeout} s; got {self.stash}")


class Server:
    def __init__(self, proc: PeerProcess, location: Location, root: Path) -> None:
        self.proc, self.location, self.root = proc, location, root
        self.workdir = root / "discoro" / "proc-1"
        locate = lambda coro=None: (yield Coro.locate(SERVER_NAME, location, 30))  # noqa: E731
        self.coro: Any = run(locate, timeout=40)
        assert self.coro is not None

    def advance(self, seconds: float) -> None:
        """Move the server's clock (its deadlines) forward; returns once it has moved."""
        self.proc.write(f"ADVANCE {seconds}")
        self.proc.expect(r"^CLOCK ", timeout=30)


@pytest.fixture
def server(net_kernel: AsynCoro, tmp_path: Path, udp_port: int) -> Iterator[Server]:
    options = f'{{"node": "127.0.0.1", "udp_port": {udp_port}, "dest_path": "{tmp_path}"}}'
    proc = PeerProcess(SERVER, "--index", "1", "--prefix", "t", "--options", options)
    try:
        match = proc.expect(r"^discoro_proc 1 ready at (\S+):(\d+) pid (\d+)$", timeout=60)
        location = Location(match[1], int(match[2]))
        connect(net_kernel, location)
        yield Server(proc, location, tmp_path)
    finally:
        proc.stop()


def make_spec(inbox: Inbox, names: list[str], **settings: Any) -> p.ComputationSpec:
    main = client_main()
    settings.setdefault("pulse_interval", 1)
    return p.ComputationSpec(
        uid=uuid.uuid4().hex,
        code=cloudpickle.dumps({name: main[name] for name in names}),
        names=names,
        files=[p.ShippedFile("helper.py", b"ANSWER = 42\n", 0o600)],
        status_coro=inbox.coro,
        router=inbox.coro,
        timeout=5,
        **settings,
    )


def run_msg(spec: p.ComputationSpec, inbox: Inbox, rid: int, func: Any, *args: Any) -> p.Run:
    name = func if isinstance(func, str) else "adder"
    return p.Run(spec.uid, rid, func, name, cloudpickle.dumps((args, {})), inbox.coro, 0)


def install(server: Server, inbox: Inbox, **settings: Any) -> p.ComputationSpec:
    spec = make_spec(inbox, ["setup", "report", "waiter", "not_a_generator"], **settings)
    server.coro.send(p.Setup(spec, inbox.coro))
    done = inbox.expect(p.SetupDone)
    assert (done.location, done.uid, done.error) == (server.location, spec.uid, "")
    return spec


def test_setup_run_shared_globals_and_close(server: Server) -> None:
    inbox = Inbox()
    spec = install(server, inbox)
    pulse = inbox.expect(p.ServerPulse)
    assert (pulse.location, pulse.uid) == (server.location, spec.uid)
    assert (server.workdir / "helper.py").read_bytes() == b"ANSWER = 42\n"
    assert (server.workdir / "helper.py").stat().st_mode & 0o777 == 0o600

    server.coro.send(run_msg(spec, inbox, 1, "setup", [1, 2, 3]))
    result = inbox.expect(p.RunResult, lambda m: m.rid == 1)
    assert result.error is None and result.coro.location == server.location
    started = inbox.expect(p.JobStarted)
    assert (started.rid, started.coro, started.func_name) == (1, result.coro, "setup")
    # router and scheduler are one process here: the run result rode in JobStarted
    assert started.reply_to == inbox.coro
    ended = inbox.expect(MonitorException)  # the status coroutine's notice
    assert ended.args[0] == result.coro and ended.args[1] == (StopIteration, [1, 2, 3])
    done = inbox.expect(p.JobDone)
    assert done.coro_id == result.coro._id
    assert done.exit is not None  # ... and the end rode in JobDone (status coroutine here too)

    server.coro.send(run_msg(spec, inbox, 2, "report", inbox.coro))
    assert inbox.expect(tuple, lambda m: m[0] == "data") == ("data", [1, 2, 3], str(server.workdir))

    adder = cloudpickle.dumps(client_main()["make_adder"]([10]))  # shipped with the run
    server.coro.send(run_msg(spec, inbox, 3, adder, inbox.coro))
    assert inbox.expect(tuple, lambda m: m[0] == "sum") == ("sum", [1, 2, 3, 10])

    server.coro.send(run_msg(spec, inbox, 4, "waiter", inbox.coro))
    job = inbox.expect(tuple, lambda m: m[0] == "waiting")[1]
    server.coro.send(p.Close(spec.uid))
    closed = inbox.expect(p.ServerClosed)
    assert (closed.uid, closed.idle) == (spec.uid, False)
    assert inbox.expect(MonitorException, lambda m: m.args[0] == job).args[1][0] is StopIteration
    assert list(server.workdir.iterdir()) == []

    server.coro.send(run_msg(spec, inbox, 5, "report", inbox.coro))  # closed: refused
    assert inbox.expect(p.RunResult, lambda m: m.rid == 5).error[0] is RuntimeError
    spec2 = install(server, inbox)  # a new computation is accepted after close
    assert spec2.uid != spec.uid


def test_run_failures_and_second_setup(server: Server) -> None:
    inbox = Inbox()
    spec = install(server, inbox)
    server.coro.send(run_msg(spec, inbox, 1, "missing"))
    error = inbox.expect(p.RunResult, lambda m: m.rid == 1).error
    assert error[0] is NameError and error[1] == "missing" and "missing" in error[2]
    assert inbox.expect(p.JobFailed).rid == 1

    server.coro.send(run_msg(spec, inbox, 2, "not_a_generator", 1))
    error = inbox.expect(p.RunResult, lambda m: m.rid == 2).error
    assert error[0] is NotACoroutineFunction and "Traceback" in error[2]
    assert inbox.expect(p.JobFailed).rid == 2

    other = p.Run("not-this-uid", 3, "setup", "setup", cloudpickle.dumps(((1,), {})), inbox.coro)
    server.coro.send(other)
    assert inbox.expect(p.RunResult, lambda m: m.rid == 3).error[0] is RuntimeError

    second = make_spec(inbox, ["setup"])
    server.coro.send(p.Setup(second, inbox.coro))
    refused = inbox.expect(p.SetupDone, lambda m: m.uid == second.uid)
    assert "busy" in refused.error
    server.coro.send(p.Setup(spec, inbox.coro))  # the same computation again: accepted
    assert inbox.expect(p.SetupDone, lambda m: m.uid == spec.uid).error == ""


def test_zombie_period_closes_idle_computation(server: Server) -> None:
    inbox = Inbox()
    spec = install(server, inbox, zombie_period=1)
    server.advance(1.5)  # the server's clock, not the real one: no close can come before
    closed = inbox.expect(p.ServerClosed)
    assert (closed.uid, closed.idle) == (spec.uid, True)
    assert list(server.workdir.iterdir()) == []


def test_quit_lets_jobs_finish_then_exits(server: Server) -> None:
    inbox = Inbox()
    spec = install(server, inbox)
    server.coro.send(run_msg(spec, inbox, 1, "waiter", inbox.coro))
    job = inbox.expect(tuple, lambda m: m[0] == "waiting")[1]
    server.coro.send(p.Quit())
    second = make_spec(inbox, ["setup"])
    server.coro.send(p.Setup(second, inbox.coro))
    assert "quitting" in inbox.expect(p.SetupDone, lambda m: m.uid == second.uid).error
    server.coro.send(run_msg(spec, inbox, 2, "report", inbox.coro))
    assert inbox.expect(p.RunResult, lambda m: m.rid == 2).error[0] is RuntimeError
    assert server.proc.proc.poll() is None  # the job still runs
    job.send("bye")
    assert inbox.expect(tuple, lambda m: m[0] == "got") == ("got", "bye")
    assert inbox.expect(p.ServerClosed).uid == spec.uid
    assert server.proc.wait(30) == 0
    assert not (server.root / "discoro" / "proc-1.pid").exists()


def test_busy_index_and_stale_pid_file(server: Server, udp_port: int) -> None:
    options = f'{{"node": "127.0.0.1", "udp_port": {udp_port}, "dest_path": "{server.root}"}}'
    args = ("--index", "1", "--prefix", "t", "--options", options)
    with PeerProcess(SERVER, *args) as second:
        second.expect(r"another discoronode seems to be running", timeout=60)
        assert second.wait(30) == 3
    pid_file = server.root / "discoro" / "proc-2.pid"
    pid_file.write_text(f"{os.getpid()}\n")  # alive, but not a discoro server: stale
    stale_args = ("--index", "2", "--prefix", "t", "--options", options)
    with PeerProcess(SERVER, *stale_args) as third:
        match = third.expect(r"^discoro_proc 2 ready at .* pid (\d+)$", timeout=60)
        assert pid_file.read_text().strip() == match[1]


FAKE_SCHEDULER = """
import sys
import cloudpickle
from discoro import AsynCoro, Coro, Location
from discoro.cluster import protocol as p

kernel = AsynCoro(node="127.0.0.1", discover=False)
where = Location("127.0.0.1", int(sys.argv[1]))

def main(coro=None):
    yield kernel.peer(where)
    server = yield Coro.locate("discoro_proc", where, timeout=30)
    spec = p.ComputationSpec("far-away", cloudpickle.dumps({}), [], [], None, coro, 1, 5)
    server.send(p.Setup(spec, coro))
    done = yield coro.receive(timeout=30)
    print("SETUP", done.error or "ok", flush=True)

Coro(main).value()
print("SCHEDULER GONE", flush=True)
sys.stdin.read()
"""


def test_scheduler_coroutine_gone_pulses_fail_and_close(server: Server) -> None:
    with PeerProcess(FAKE_SCHEDULER, str(server.location.port)) as scheduler:
        scheduler.expect("^SETUP ok$", timeout=60)
        # its process lives on, its coroutine ended
        scheduler.expect("^SCHEDULER GONE$", timeout=30)
        # A pulse already on its way may still be delivered after the clock moved, and then
        # counts from the new time: move the clock again until the failed pulses add up to
        # more than 5 intervals (each round waits at most a few real pulse intervals).
        for _ in range(6):
            server.advance(6)
            try:
                server.proc.expect(r"scheduler unreachable for too long; closing far-away", 3)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError(
                "the server never gave up on its silent scheduler:\n"
                + "\n".join(server.proc.output)
            )
    inbox = Inbox()
    install(server, inbox)  # free again


def test_scheduler_process_offline_closes_at_once(server: Server) -> None:
    with PeerProcess(FAKE_SCHEDULER, str(server.location.port)) as scheduler:
        scheduler.expect("^SETUP ok$", timeout=60)
        scheduler.kill()
        server.proc.expect(r"scheduler \S+ went offline; closing", timeout=30)
    inbox = Inbox()
    install(server, inbox)


def test_fenced_incarnation_ends_its_jobs_unreported_and_is_set_up_again(server: Server) -> None:
    """Issue 10: `Fenced` ends the incarnation's jobs without a word to their monitors and is
    answered ``ServerClosed(fenced=True)``; a `Setup` with a higher incarnation does the same
    for the installed one first. Every report carries the incarnation."""
    inbox = Inbox()
    spec = make_spec(inbox, ["setup", "waiter"])
    server.coro.send(p.Setup(spec, inbox.coro, incarnation=3))
    assert inbox.expect(p.SetupDone).incarnation == 3
    server.coro.send(run_msg(spec, inbox, 1, "waiter", inbox.coro))
    first = inbox.expect(tuple, lambda m: m[0] == "waiting")[1]
    assert inbox.expect(p.RunResult, lambda m: m.rid == 1).incarnation == 3
    assert inbox.expect(p.JobStarted).incarnation == 3
    assert inbox.expect(p.ServerPulse).incarnation == 3

    server.coro.send(p.Fenced(spec.uid, 2, "an older incarnation"))  # not installed: ignored
    server.coro.send(p.Fenced(spec.uid, 3, "written off by the test"))
    closed = inbox.expect(p.ServerClosed)
    assert (closed.incarnation, closed.fenced, closed.uid) == (3, True, spec.uid)
    server.proc.expect(r"incarnation 3 of computation \S+ was written off", timeout=30)

    server.coro.send(p.Setup(spec, inbox.coro, incarnation=4))  # rejoins as a new incarnation
    assert inbox.expect(p.SetupDone, lambda m: m.incarnation == 4).error == ""
    server.coro.send(run_msg(spec, inbox, 2, "waiter", inbox.coro))
    second = inbox.expect(tuple, lambda m: m[0] == "waiting")[1]

    server.coro.send(p.Setup(spec, inbox.coro, incarnation=5))  # written off without hearing Fenced
    closed = inbox.expect(p.ServerClosed, lambda m: m.incarnation == 4)
    assert closed.fenced
    assert inbox.expect(p.SetupDone, lambda m: m.incarnation == 5).error == ""
    server.coro.send(run_msg(spec, inbox, 3, "setup", "last"))
    last = inbox.expect(p.RunResult, lambda m: m.rid == 3).coro
    assert inbox.expect(MonitorException, lambda m: m.args[0] == last).args[1][1] == "last"
    # the jobs of the written-off incarnations ended without a report (FIFO: it would
    # have come before the last job's)
    ended = [m.args[0] for m in inbox.stash if isinstance(m, MonitorException)]
    assert first not in ended and second not in ended, inbox.stash
