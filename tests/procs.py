"""Helpers for tests that run real peer processes on loopback.

`PeerProcess` runs a Python program in a child process with the test's secret in its
environment and lets the test wait for lines it prints. Programs print what the test needs to
know (e.g. ``print("LOCATION", kernel.location, flush=True)``) and the test waits for those
lines: events, not sleeps.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

SRC = str(Path(__file__).resolve().parent.parent / "src")


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port that is free on 127.0.0.1 now (TCP by default, or UDP with SOCK_DGRAM)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PeerProcess:
    """A child Python process running ``program`` (source text); its stdout lines are queued."""

    def __init__(
        self,
        program: str,
        *args: str,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        prefix: Sequence[str] = (),
    ) -> None:
        """``prefix`` goes before the interpreter in the command line, e.g.
        ``["ip", "netns", "exec", "ns1"]`` to run the program in a network namespace."""
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = SRC + os.pathsep + full_env.get("PYTHONPATH", "")
        full_env["PYTHONUNBUFFERED"] = "1"
        full_env.update(env or {})
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-c", textwrap.dedent(program), *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=full_env,
            cwd=cwd,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.output.append(line)
            self.lines.put(line)

    def expect(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """Wait for an output line matching ``pattern`` (regex search); its match. The
        default deadline is generous: on a loaded machine, under coverage, a line may take
        many seconds, and only a test that fails waits it out."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no line matching {pattern!r} within {timeout} s; output so far:\n"
                    + "\n".join(self.output)
                )
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            match = re.search(pattern, line)
            if match:
                return match

    def expect_all(self, *patterns: str, timeout: float = 30.0) -> list[re.Match[str]]:
        """Wait until each pattern has matched an output line, in any order; the matches in
        the order of ``patterns``."""
        deadline = time.monotonic() + timeout
        found: dict[int, re.Match[str]] = {}
        while len(found) < len(patterns):
            remaining = deadline - time.monotonic()
            missing = [p for i, p in enumerate(patterns) if i not in found]
            if remaining <= 0:
                raise AssertionError(
                    f"no lines matching {missing!r} within {timeout} s; output so far:\n"
                    + "\n".join(self.output)
                )
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            for i, pattern in enumerate(patterns):
                match = None if i in found else re.search(pattern, line)
                if match:
                    found[i] = match
                    break
        return [found[i] for i in range(len(patterns))]

    def write(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float = 30.0) -> int:
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):  # stdin's last flush to a dead process
                    pipe.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(5)

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
