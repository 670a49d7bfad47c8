"""`Node`: the process manager of the ``discoronode`` program (reference 4).

It starts N server processes (``python -m discoro.cluster.server_main``), each with its own
address space, directory and network kernel, prints ``discoronode: N processes ready at
ADDR`` once every one has printed its ready line, restarts a server process that dies (with
a bounded backoff, logged), and shuts down on SIGINT/SIGTERM or a ``quit``/``exit`` line.

Theory of operation:
- The node itself runs no discoro kernel. One reader thread per child forwards its output and
  reports its ready line and its exit; signal handlers and the stdin reader report too; the
  main thread handles these events from one `queue.SimpleQueue` (whose ``put`` is safe in a
  signal handler), so all decisions are taken in one place.
- Children run in their own session (a terminal's Ctrl-C reaches only the node) and watch
  their stdin: the node asks them to quit by writing ``quit`` and closing it, and if the node
  dies they see the end of stdin and quit by themselves.
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
from typing import TYPE_CHECKING, Any, TextIO

from discoro.cluster import procdir
from discoro.cluster.server_main import EXIT_BUSY, EXIT_CANNOT_START

if TYPE_CHECKING:
    from collections.abc import Callable

READY = re.compile(r"^discoro_proc (\d+) ready at (\S+):(\d+) pid (\d+)$")
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
    tcp_port: int = 0  # first port; process i uses tcp_port + i - 1
    log_level: str | None = None  # e.g. "DEBUG", passed to the server processes
    grace: float = 10.0
    startup_timeout: float = 60.0
    quit_at_eof: bool = False  # the end of stdin stops the node (``--ssh-session``)


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


class Node:
    def __init__(self, config: NodeConfig, out: TextIO | None = None) -> None:
        self.config = config
        self.out = out or sys.stdout
        self.events: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.children = {i: Child(i) for i in range(1, config.count + 1)}
        self.stopping = False
        self.announced = False
        self._handoff = _master_key_handoff(config.secret)

    def say(self, text: str) -> None:
        print(f"discoronode: {text}", file=self.out, flush=True)

    # -- children --------------------------------------------------------------------------

    def _command(self, index: int) -> list[str]:
        options = dict(self.config.options)
        if self.config.tcp_port:
            options["tcp_port"] = self.config.tcp_port + index - 1
        command = [sys.executable, "-m", procdir.SERVER_MODULE, "--index", str(index)]
        command += ["--prefix", self.config.prefix, "--options", json.dumps(options)]
        command += ["--watch-stdin"]
        if self.config.log_level:
            command += ["--log-level", self.config.log_level]
        return command

    def _spawn(self, child: Child) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
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
        child.ready_at, child.restart_due = "", None
        threading.Thread(target=self._read, args=(child.index, popen), daemon=True).start()

    def _read(self, index: int, popen: subprocess.Popen[str]) -> None:
        assert popen.stdout is not None
        for line in popen.stdout:
            self.events.put(("line", index, popen, line.rstrip("\n")))
        popen.wait()
        self.events.put(("exit", index, popen))

    def _on_line(self, child: Child, line: str) -> None:
        match = READY.match(line)
        if match is None or int(match[1]) != child.index:
            child.output = [*child.output[-20:], line]
            print(f"proc-{child.index}: {line}", file=self.out, flush=True)
            return
        child.ready_at, child.ever_ready = f"{match[2]}:{match[3]}", True
        self.say(f"process {child.index} ready at {child.ready_at} (pid {match[4]})")
        if not self.announced and all(c.ready_at for c in self.children.values()):
            self.announced = True
            addr = child.ready_at.rsplit(":", 1)[0]
            self.say(f"{len(self.children)} processes ready at {addr}")

    def _on_exit(self, child: Child, popen: subprocess.Popen[str]) -> int | None:
        """Handle a child's exit; an exit status for the node if it must stop."""
        status = popen.returncode
        child.popen, child.ready_at = None, ""
        procdir.remove(procdir.pidfile(self.config.options, child.index), popen.pid)
        if self.stopping:
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
        self._watch_stdin()
        for child in self.children.values():
            self._spawn(child)
        deadline = time.monotonic() + self.config.startup_timeout
        status = 0
        while not self.stopping:
            now = time.monotonic()
            if not self.announced and now > deadline:
                self.say(f"not every process was ready within {self.config.startup_timeout} s")
                status = 1
                break
            due = [c.restart_due for c in self.children.values() if c.restart_due is not None]
            timeout = max(0.0, min(due) - now) if due else 5.0
            try:
                event = self.events.get(timeout=timeout)
            except queue.Empty:
                event = ("tick",)
            result = self._dispatch(event)
            if result is not None:
                status = result
                break
            for child in self.children.values():
                if child.restart_due is not None and child.restart_due <= time.monotonic():
                    self._spawn(child)
        self.shutdown()
        return status

    def _dispatch(self, event: tuple[Any, ...]) -> int | None:
        kind = event[0]
        if kind in ("line", "exit"):
            child = self.children[event[1]]
            popen: subprocess.Popen[str] = event[2]
            if popen is not child.popen:
                return None  # an earlier incarnation's leftovers
            if kind == "line":
                self._on_line(child, event[3])
                return None
            return self._on_exit(child, popen)
        if kind in ("signal", "quit"):
            self.say(f"{event[1]}: stopping")
            return 0
        return None

    def _install_signals(self) -> None:
        def handler(signum: int, _frame: Any) -> None:
            self.events.put(("signal", signal.Signals(signum).name))

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, handler)

    def _watch_stdin(self) -> None:
        def quit_now(reason: str) -> None:
            self.events.put(("quit", reason))

        watch_stdin(quit_now, quit_now if self.config.quit_at_eof else None)

    # -- shutdown ----------------------------------------------------------------------------

    def shutdown(self) -> None:
        """Quit every server process: gracefully, then SIGTERM, then SIGKILL."""
        self.stopping = True
        for child in self.children.values():
            child.restart_due = None
            self._tell_quit(child)
        forced = self._wait_children(self.config.grace)
        if not forced:
            return
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

    def _tell_quit(self, child: Child) -> None:
        popen = child.popen
        if popen is None or popen.stdin is None:
            return
        try:
            popen.stdin.write("quit\n")
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


def watch_stdin(
    on_quit: Callable[[str], None], on_eof: Callable[[str], None] | None = None
) -> None:
    """Call ``on_quit(line)`` (from a daemon thread) when a ``quit`` or ``exit`` line arrives
    on stdin, and ``on_eof("end of stdin")`` (if given) at its end or when it fails. Without
    ``on_eof``, at the end of stdin, or if stdin is closed or a terminal we do not own (a
    background job), only signals stop the program: nothing polls or spins."""
    stream = sys.stdin
    if stream is None or stream.closed:
        return
    try:
        if stream.isatty():
            if os.tcgetpgrp(stream.fileno()) != os.getpgrp():
                return  # started in the background: reading would stop us (SIGTTIN)
            signal.signal(signal.SIGTTIN, signal.SIG_IGN)  # moved to the background: EIO
    except (OSError, ValueError, AttributeError):
        return

    def watch() -> None:
        try:
            for line in stream:
                if line.strip().lower() in ("quit", "exit"):
                    on_quit(line.strip().lower())
                    return
        except (OSError, ValueError):
            pass  # stdin went away under us
        if on_eof is not None:
            on_eof("end of stdin")

    threading.Thread(target=watch, name="discoro-stdin", daemon=True).start()


def _master_key_handoff(secret: str | None) -> tuple[str, str]:
    """The environment variable and value that hand the children the stretched secret
    (`wire.keys.handoff`): the node runs scrypt once, not every server process at start."""
    from discoro.net.secret import resolve_secret
    from discoro.wire.keys import MASTER_KEY_ENV, handoff

    return MASTER_KEY_ENV, handoff(resolve_secret(secret))
