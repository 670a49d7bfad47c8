"""Helpers for tests of the distributed runtime with real peer processes on loopback.

`start_peer` runs a child program (after a prelude that starts a discoro kernel on
127.0.0.1 without discovery), waits until it prints its location, and connects the test's own
kernel to it. Child programs report what the test must wait for by printing lines; the test
waits for those lines (`PeerProcess.expect`) or for messages: events, not sleeps.
"""

from __future__ import annotations

import textwrap
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from discoro import AsynCoro, Coro, Location
from procs import PeerProcess

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

PRELUDE = """\
import sys
from discoro import *
from discoro.errors import RemoteError
kernel = AsynCoro(node="127.0.0.1", discover=False)
"""

ANNOUNCE = """
print("LOCATION", kernel.location.addr, kernel.location.port, flush=True)
sys.stdin.read()  # live until the test stops this process
"""


class Child:
    """A running child peer: its process and its kernel's location."""

    def __init__(self, proc: PeerProcess, location: Location) -> None:
        self.proc = proc
        self.location = location

    def expect(self, pattern: str, timeout: float = 30.0) -> Any:
        return self.proc.expect(pattern, timeout)


def run(target: Callable[..., Any], *args: Any, timeout: float = 20.0) -> Any:
    """Run the generator function ``target(*args, coro=...)`` as a coroutine in the test's
    kernel: its final value, or the exception it raised (an assertion that failed in it)."""
    outcome: dict[str, Any] = {}

    def wrapper(coro: Any = None) -> Any:
        try:
            outcome["value"] = yield target(*args, coro=coro)
        except BaseException as exc:
            outcome["error"] = exc

    Coro(wrapper).value(timeout=timeout)
    if "error" in outcome:
        raise outcome["error"]
    if "value" not in outcome:
        raise AssertionError(f"{target.__name__} did not end within {timeout} s")
    return outcome["value"]


def connect(kernel: AsynCoro, location: Location) -> None:
    def dial(coro: Any = None) -> Any:
        result = yield kernel.peer(location)
        return result

    assert run(dial) == 0


@contextmanager
def start_peer(
    kernel: AsynCoro, program: str, dial: bool = True, env: dict[str, str] | None = None
) -> Iterator[Child]:
    """A child running ``program`` (which sees ``kernel``, everything ``discoro`` exports
    and ``RemoteError``), connected to the test's ``kernel`` unless ``dial`` is false; stopped
    when the block ends. ``env``: more environment variables for the child (e.g.
    ``DISCORO_NET_THREAD=1``: its network on a transport thread, as a server process's)."""
    source = PRELUDE + textwrap.dedent(program) + ANNOUNCE
    proc = PeerProcess(source, env=env)
    try:
        match = proc.expect(r"^LOCATION (\S+) (\d+)$", timeout=60)  # slow start under load
        child = Child(proc, Location(match[1], int(match[2])))
        if dial:
            connect(kernel, child.location)
        yield child
    finally:
        proc.stop()
