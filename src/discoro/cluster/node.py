"""`Node`: the process manager of the ``discoronode`` program (reference 4).

It starts N server processes (``python -m discoro.cluster.server_main``), each with its own
address space, directory and network kernel, prints ``discoronode: N processes ready at
ADDR`` once every one has printed its ready line, restarts a server process that dies (with
a bounded backoff, logged), and shuts down on SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGABRT or a
``quit``/``exit`` line. Unless ``daemon``, stdin also takes ``status`` (or an empty line:
one line per server process), ``close`` (close the current computation once its jobs are
done, go on serving) and ``terminate`` (end the jobs, then exit).

Service (later versions, section 5): ``serve`` N: after N computations were installed no
process takes another, and once none is installed the node exits. A `ServiceWindow`: server
processes run only while it is SERVING; at its stop they quit once their jobs are done, at
its end they are terminated, and they start again at the next start.

Theory of operation:
- The node itself runs no discoro kernel. One reader thread per child forwards its output and
  reports its ready line and its exit; signal handlers and the stdin reader report too; the
  main thread handles these events from one `queue.SimpleQueue` (whose ``put`` is safe in a
  signal handler), so all decisions are taken in one place.
- Children run in their own session (a terminal's Ctrl-C reaches only the node) and watch
  their stdin: the node asks them to quit by writing ``quit`` and closing it, and if the node
  dies they see the end of stdin and quit by themselves. Operator commands go to them the
  same way; they answer with lines on stdout (`CHILD_EVENT`: a computation installed or
  closed, a status line), which is how the node counts computations served.
- A child that cannot start for a reason retrying cannot fix (its index in use, a port or
  file it cannot use: exit statuses `EXIT_BUSY`, `EXIT_CANNOT_START`) stops the node at once,
  after the child's own one-line reason.
- Shutdown: ``quit`` to every child; after ``grace`` seconds (or a second signal) SIGTERM,
  which makes a quitting server terminate its jobs; 3 s later SIGKILL. PID files of killed
  children are removed by the node.

Invariants: every wait is bounded; an idle node sleeps in ``SimpleQueue.get`` (no polling of
stdin at EOF, no busy loop).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from discoro.cluster import procdir
from discoro.cluster.load import SERVERS_ENV
from discoro.cluster.serve_count import ServeCount
from discoro.cluster.server_main import EXIT_BUSY, EXIT_CANNOT_START
from discoro.cluster.service_window import Phase, ServiceWindow
from discoro.cluster.stdin_commands import read_commands

READY = re.compile(r"^discoro_proc (\d+) ready at (\S+):(\d+) pid (\d+)$")
CHILD_EVENT = re.compile(r"^discoro_proc (\d+) (installed|closed|status:) (.*)$")
COMMANDS = ("status", "close", "quit", "exit", "terminate")
QUIT_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGABRT")
RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # then 30 s; reset after STABLE seconds
STABLE = 60.0
START_ATTEMPTS = 3  # a process that fails this often before its first ready line is fatal
KILL_DELAY = 3.0


@dataclass
class NodeConfig:
    count: int
    prefix: str
    options: dict[str, Any]  # JSON-able AsynCoro options (no secret, no tcp_port)
    secret: str | None = None
    tcp_port: int = 0  # first port; process i uses tcp_port + i - 1 (unless tcp_ports)
    log_level: str | None = None  # e.g. "DEBUG", passed to the server processes
    grace: float = 10.0
    startup_timeout: float = 60.0
    tcp_ports: list[int] = field(default_factory=list)  # process i listens on [i - 1]
    daemon: bool = False  # read no commands on stdin
    serve: int = -1  # computations to serve before exiting (-1: no limit)
    window: ServiceWindow | None = None
    rules: dict[str, float] = field(default_factory=dict)  # JSON-able NodeRules (no serve)
    quit_at_eof: bool = False  # the end of stdin stops the node (``--ssh-session``)
    net_thread: bool = True  # servers run their network on a transport thread (D10)


@dataclass
class Child:
    index: int
    popen: subprocess.Popen[str] | None = None
    started: float = 0.0
    ready_at: str = ""  # "addr:port" once ready
    pid: int = 0
    failures: int = 0  # consecutive exits
    ever_ready: bool = False
    restart_due: float | None = None
    output: list[str] = field(default_factory=list)
    retired: bool = False  # told to quit by the service window: its exit is no failure
    kill_due: float | None = None  # told to terminate: killed if still running by then


class Node:
    def __init__(self, config: NodeConfig, out: TextIO | None = None) -> None:
        self.config = config
        self.out = out or sys.stdout
        self.events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.children = {i: Child(i) for i in range(1, config.count + 1)}
        self.stopping = False
        self.announced = False
        self._handoff = _master_key_handoff(config.secret)
        self.serving = ServeCount(config.serve)
        self.phase = Phase.SERVING
        self.deadline = 0.0  # of the start-up (monotonic), while not announced

    def say(self, text: str) -> None:
        print(f"discoronode: {text}", file=self.out, flush=True)

    # -- children --------------------------------------------------------------------------

    def _command(self, index: int) -> list[str]:
        options = dict(self.config.options)
        if self.config.tcp_ports and index <= len(self.config.tcp_ports):
            options["tcp_port"] = self.config.tcp_ports[index - 1]
        elif self.config.tcp_port:
            options["tcp_port"] = self.config.tcp_port + index - 1
        rules = dict(self.config.rules)
        if self.config.serve >= 0:
            rules["serve"] = self.serving.remaining()
        command = [sys.executable, "-m", procdir.SERVER_MODULE, "--index", str(index)]
        command += ["--prefix", self.config.prefix, "--options", json.dumps(options)]
        command += ["--rules", json.dumps(rules), "--watch-stdin"]
        if self.config.log_level:
            command += ["--log-level", self.config.log_level]
        command.append("--net-thread" if self.config.net_thread else "--no-net-thread")
        return command

    def _spawn(self, child: Child) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env[SERVERS_ENV] = str(self.config.count)  # for node info and allocations
        if self.config.secret:
            env["DISCORO_SECRET"] = self.config.secret
        name, value = self._handoff
        env[name] = value  # the stretched secret: so the child need not run scrypt again
        popen = subprocess.Popen(
            self._command(child.index),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        child.popen, child.pid, child.started = popen, popen.pid, time.monotonic()
        child.ready_at, child.restart_due, child.retired = "", None, False
        child.kill_due = None
        threading.Thread(target=self._read, args=(child.index, popen), daemon=True).start()

    def _read(self, index: int, popen: subprocess.Popen[str]) -> None:
        assert popen.stdout is not None
        for line in popen.stdout:
            self.events.put(("line", index, popen, line.rstrip("\n")))
        popen.wait()
        self.events.put(("exit", index, popen))

    def _on_line(self, child: Child, line: str) -> int | None:
        """Handle a child's line; an exit status for the node if it must stop."""
        event = CHILD_EVENT.match(line)
        if event is not None and int(event[1]) == child.index:
            return self._on_child_event(child, event[2], event[3])
        match = READY.match(line)
        if match is None or int(match[1]) != child.index:
            child.output = [*child.output[-20:], line]
            print(f"proc-{child.index}: {line}", file=self.out, flush=True)
            return None
        child.ready_at, child.ever_ready = f"{match[2]}:{match[3]}", True
        self.say(f"process {child.index} ready at {child.ready_at} (pid {match[4]})")
        if not self.announced and all(c.ready_at for c in self.children.values()):
            self.announced = True
            addr = child.ready_at.rsplit(":", 1)[0]
            self.say(f"{len(self.children)} processes ready at {addr}")
        return None

    def _on_child_event(self, child: Child, kind: str, text: str) -> int | None:
        if kind == "status:":
            self.say(f"process {child.index}: {text}")
            return None
        if kind == "installed":
            if self.serving.installed(child.index, text):
                reason = f"the node has served its {self.config.serve} computation(s) (--serve)"
                for other in self.live():
                    self._tell(other, f"retire {reason}")
            return None
        return self._served_all() if self.serving.closed(child.index, text) else None

    def _served_all(self) -> int:
        self.say(f"served {len(self.serving.served)} computation(s): stopping")
        return 0

    def _on_exit(self, child: Child, popen: subprocess.Popen[str]) -> int | None:
        """Handle a child's exit; an exit status for the node if it must stop."""
        status = popen.returncode
        child.popen, child.ready_at = None, ""
        procdir.remove(procdir.pidfile(self.config.options, child.index), popen.pid)
        if self.stopping:
            return None
        if self.serving.gone(child.index):
            return self._served_all()
        if child.retired:  # the service window told it to quit
            self.say(f"process {child.index} stopped (service window)")
            if self.phase is Phase.SERVING:  # the next window began meanwhile
                child.restart_due = time.monotonic()
            return None
        if status == EXIT_BUSY:
            self.say(f"process {child.index} cannot start: its index is in use; stopping")
            return 1
        if status == EXIT_CANNOT_START:  # its one line said why; retrying cannot help
            self.say(f"process {child.index} cannot start; stopping")
            return 1
        ran = time.monotonic() - child.started
        child.failures = 1 if ran >= STABLE else child.failures + 1
        if not child.ever_ready and child.failures >= START_ATTEMPTS:
            self.say(f"process {child.index} failed {child.failures} times at start; stopping")
            return 1
        delay = RESTART_DELAYS[min(child.failures, len(RESTART_DELAYS)) - 1]
        self.say(
            f"process {child.index} (pid {popen.pid}) exited with status {status}; "
            f"restarting in {delay:g} s"
        )
        child.restart_due = time.monotonic() + delay
        return None

    # -- the main loop ---------------------------------------------------------------------

    def run(self) -> int:
        """Start the processes and supervise them until told to stop; the exit status."""
        self._install_signals()
        if not self.config.daemon or self.config.quit_at_eof:
            self._watch_stdin()
        window = self.config.window
        if window is not None:
            self.say(f"service window: {window.describe()}")
        self._enter(self._current_phase()[0], first=True)
        status = 0
        while not self.stopping:
            now = time.monotonic()
            if not self.announced and self.phase is Phase.SERVING and now > self.deadline:
                self.say(f"not every process was ready within {self.config.startup_timeout} s")
                status = 1
                break
            due = [c.restart_due for c in self.children.values() if c.restart_due is not None]
            due += [c.kill_due for c in self.live() if c.kill_due is not None]
            timeout = max(0.0, min(due) - now) if due else 5.0
            phase, change_in = self._current_phase()
            if phase is not self.phase:
                self._enter(phase)
                continue
            try:
                event = self.events.get(timeout=min(timeout, change_in))
            except queue.Empty:
                event = ("tick",)
            result = self._dispatch(event)
            if result is not None:
                status = result
                break
            for child in self.children.values():
                if child.restart_due is not None and child.restart_due <= time.monotonic():
                    self._spawn(child)
            self._kill_overdue()
        self.shutdown(terminate=self.terminating)
        return status

    terminating = False  # set by the ``terminate`` command: end the jobs

    # -- the service window ----------------------------------------------------------------

    def _current_phase(self) -> tuple[Phase, float]:
        """The window's phase now and the seconds until it changes (always SERVING, and
        "a while", without a window)."""
        window = self.config.window
        if window is None:
            return Phase.SERVING, 3600.0
        phase, seconds = window.phase(_local_time_of_day())
        return phase, float(seconds)

    def _enter(self, phase: Phase, first: bool = False) -> None:
        self.phase = phase
        if phase is Phase.SERVING:
            if not first:
                self.say("service window starts: starting the server processes")
            self.announced = False
            self.deadline = time.monotonic() + self.config.startup_timeout
            for child in self.children.values():
                if child.popen is None:
                    self._spawn(child)
            return None
        for child in self.children.values():
            child.restart_due = None
        if first:
            self.say("outside the service window: waiting for its start")
        elif phase is Phase.STOPPING:
            self.say("service window stops: server processes quit once their jobs are done")
            for child in self.live():
                child.retired = True
                self._tell(child, "quit")
        else:
            self.say("service window ends: terminating the server processes")
            for child in self.live():
                child.retired = True
                child.kill_due = time.monotonic() + self.config.grace
                self._tell(child, "terminate", close=True)

    def _kill_overdue(self) -> None:
        """Kill the server processes told to terminate that are still running (a job that
        never yields keeps a process from ending its jobs)."""
        for child in self.live():
            if child.kill_due is not None and child.kill_due <= time.monotonic():
                child.kill_due = None
                self.say(f"process {child.index} did not terminate; killing it")
                self._signal(child, signal.SIGKILL)

    # -- events ------------------------------------------------------------------------------

    def _dispatch(self, event: tuple[Any, ...]) -> int | None:
        kind = event[0]
        if kind in ("line", "exit"):
            child = self.children[event[1]]
            popen: subprocess.Popen[str] = event[2]
            if popen is not child.popen:
                return None  # an earlier incarnation's leftovers
            if kind == "line":
                return self._on_line(child, event[3])
            return self._on_exit(child, popen)
        if kind in ("signal", "quit"):  # a signal, or the end of an SSH session's stdin
            self.say(f"{event[1]}: stopping")
            return 0
        if kind == "command":
            return self._on_command(event[1])
        return None

    def _on_command(self, command: str) -> int | None:
        if command in ("quit", "exit", "terminate"):
            self.terminating = command == "terminate"
            self.say(f"{command}: stopping")
            return 0
        if command == "close":
            self.say("close: each process closes its computation once its jobs are done")
            for child in self.live():
                self._tell(child, "close")
            return None
        for child in self.children.values():  # status
            if child.popen is None:
                why = (
                    "outside the service window"
                    if self.phase is not Phase.SERVING
                    else ("restarting")
                )
                self.say(f"process {child.index}: not running ({why})")
            else:
                self._tell(child, "status")
        return None

    def _install_signals(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            self.events.put(("signal", signal.Signals(signum).name))

        for name in QUIT_SIGNALS:
            signal.signal(getattr(signal, name), handler)

    def _watch_stdin(self) -> None:
        def quit_now(reason: str) -> None:
            self.events.put(("quit", reason))

        read_commands(
            "discoronode",
            COMMANDS,
            lambda word, _rest: self.events.put(("command", word)),
            empty="status",
            on_eof=quit_now if self.config.quit_at_eof else None,
        )

    # -- shutdown ----------------------------------------------------------------------------

    def shutdown(self, terminate: bool = False) -> None:
        """Quit every server process: gracefully (``terminate``: ending their jobs), then
        SIGTERM, then SIGKILL."""
        self.stopping = True
        for child in self.children.values():
            child.restart_due = None
            self._tell(child, "terminate" if terminate else "quit", close=True)
        forced = self._wait_children(self.config.grace)
        if not forced:
            return None
        for child in self.live():
            self.say(f"process {child.index} still running; terminating it")
            self._signal(child, signal.SIGTERM)
        if self._wait_children(KILL_DELAY, interruptible=False):
            for child in self.live():
                self.say(f"process {child.index} did not stop; killing it")
                self._signal(child, signal.SIGKILL)
            self._wait_children(KILL_DELAY, interruptible=False)
        for child in self.children.values():
            procdir.remove(procdir.pidfile(self.config.options, child.index), child.pid)

    def live(self) -> list[Child]:
        return [c for c in self.children.values() if c.popen is not None]

    def _tell(self, child: Child, line: str, close: bool = False) -> None:
        """Write a command line to a child (and close its stdin: the last one)."""
        popen = child.popen
        if popen is None or popen.stdin is None or popen.stdin.closed:
            return None
        try:
            popen.stdin.write(line + "\n")
            popen.stdin.flush()
            if close:
                popen.stdin.close()
        except (OSError, ValueError):
            pass

    def _signal(self, child: Child, signum: int) -> None:
        if child.popen is not None and child.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.popen.send_signal(signum)

    def _wait_children(self, seconds: float, interruptible: bool = True) -> bool:
        """Wait until every child exited (False) or ``seconds`` passed or a signal came
        (True: force them)."""
        deadline = time.monotonic() + seconds
        while self.live():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            try:
                event = self.events.get(timeout=remaining)
            except queue.Empty:
                continue
            if event[0] == "signal" and interruptible:
                return True
            if event[0] in ("line", "exit"):
                self._dispatch(event)
        return False


def _local_time_of_day() -> int:
    now = datetime.datetime.now()
    return now.hour * 3600 + now.minute * 60 + now.second


def _master_key_handoff(secret: str | None) -> tuple[str, str]:
    """The environment variable and value that hand the children the stretched secret
    (`wire.keys.handoff`): the node runs scrypt once, not every server process at start."""
    from discoro.net.secret import resolve_secret
    from discoro.wire.keys import MASTER_KEY_ENV, handoff

    return MASTER_KEY_ENV, handoff(resolve_secret(secret))
