"""`local_cluster`: a real ``discoronode`` on this machine, for demos, tests and trying out.

    with discoro.local_cluster(procs=2, udp_port=port) as cluster:
        ...  # cluster.node_addr, cluster.procs (Locations of the server processes)

It runs the node program in a subprocess bound to 127.0.0.1 (``node`` to change it), with
the given (or default) secret in its environment (never on its command line) and, unless
``dest_path`` is given, a private temporary directory (so several local clusters do not
collide and nothing is left behind). It waits for the node's ready line; if that does not
come within ``timeout`` seconds the node is stopped and `LocalClusterError` carries its
output. ``stop()`` (or leaving the ``with`` block) ends the node with SIGTERM, which quits
every server process.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

from discoro.errors import DiscoroError
from discoro.net.location import Location

READY = re.compile(r"^discoronode: (\d+) processes ready at (\S+)$")
PROC_READY = re.compile(r"^discoronode: process (\d+) ready at (\S+):(\d+) \(pid (\d+)\)$")


class LocalClusterError(DiscoroError):
    """The local node did not start; the message has its output."""


class LocalCluster:
    """A running local node (what `local_cluster` returns): ``node_addr`` (its address),
    ``procs`` (process number -> `Location`), ``output`` (its lines so far), ``running``,
    ``stop()``; a context manager that stops the node when the block ends."""

    def __init__(
        self,
        procs: int = 2,
        node: str = "127.0.0.1",
        udp_port: int = 51350,
        secret: str | None = None,
        dest_path: str | None = None,
        tcp_port: int = 0,
        name: str = "local",
        timeout: float = 60.0,
        args: tuple[str, ...] = (),
    ) -> None:
        self.nprocs = procs
        self.node = node
        self.udp_port = udp_port
        self.secret = secret
        self._own_dir = dest_path is None
        self.dest_path = dest_path or tempfile.mkdtemp(prefix="discoro-local-")
        self.tcp_port = tcp_port
        self.name = name
        self.timeout = timeout
        self.args = args
        self.node_addr: str | None = None
        self.procs: dict[int, Location] = {}
        self.output: list[str] = []
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._popen: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def command(self) -> list[str]:
        command = [sys.executable, "-m", "discoro.cli.node", "-c", str(self.nprocs), "--force"]
        command += ["-i", self.node, "-u", str(self.udp_port), "-n", self.name]
        command += ["--dest_path", self.dest_path, "--tcp_port", str(self.tcp_port)]
        return command + list(self.args)

    def start(self) -> LocalCluster:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if self.secret:
            env["DISCORO_SECRET"] = self.secret
        self._popen = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _read(self) -> None:
        assert self._popen is not None and self._popen.stdout is not None
        for line in self._popen.stdout:
            line = line.rstrip("\n")
            self.output.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                line = self._lines.get(timeout=max(0.0, remaining))
            except queue.Empty:
                line = None
                remaining = 0
            if line is None:
                why = "exited" if remaining > 0 else f"was not ready within {self.timeout} s"
                raise LocalClusterError(
                    f"discoronode {why}; its output:\n" + "\n".join(self.output)
                )
            match = PROC_READY.match(line)
            if match:
                self.procs[int(match[1])] = Location(match[2], int(match[3]))
            match = READY.match(line)
            if match:
                self.node_addr = match[2]
                return

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def stop(self, timeout: float = 20.0) -> int | None:
        """End the node (and its server processes); its exit status."""
        popen = self._popen
        status = None
        if popen is not None:
            if popen.poll() is None:
                popen.send_signal(signal.SIGTERM)
            try:
                status = popen.wait(timeout)
            except subprocess.TimeoutExpired:
                popen.kill()
                status = popen.wait(5)
            if self._reader is not None:
                self._reader.join(5)
            if popen.stdout is not None and not (self._reader and self._reader.is_alive()):
                popen.stdout.close()
        if self._own_dir:
            shutil.rmtree(self.dest_path, ignore_errors=True)
        return status

    def __enter__(self) -> LocalCluster:
        return self if self.running else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def local_cluster(procs: int = 2, **options: Any) -> LocalCluster:
    """Start a real ``discoronode`` with ``procs`` server processes on 127.0.0.1 and wait
    until they are ready; a `LocalCluster` (use it in a ``with`` block to stop the node at
    the end).

    Options: ``node`` (address, default 127.0.0.1), ``udp_port`` (discovery, default 51350:
    give a free one to keep apart from other clusters), ``secret`` (passed in the node's
    environment, never on its command line), ``dest_path`` (default a private temporary
    folder, removed at the end), ``tcp_port``, ``name``, ``timeout`` (seconds to wait for the
    node; `LocalClusterError` with its output if it is not ready), ``args`` (extra
    ``discoronode`` arguments)."""
    return LocalCluster(procs, **options).start()
