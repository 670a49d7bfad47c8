"""Running a computation's ``node_setup`` / ``server_setup`` hooks in a server process
(later-versions 3.4, D9).

A hook is a shipped generator (or ``async def``) function of the computation; it runs as an
ordinary coroutine in the computation's namespace, so the globals it declares are the
namespace's. Success is a final value of 0; anything else, or an exception, is a failure
whose reason (the value, or the traceback) goes back to the scheduler and on to the client.

A hook is bounded: one that has not ended within the computation's ``setup_timeout``
(`discoro.cluster.setup_options.SETUP_TIMEOUT`, given by the client) is terminated and
counts as failed ("did not finish within N s"), so a hung hook never holds its node or
server. node_setup runs with the node directory as its working directory (later-versions
3.4; the working directory is put back when it ends).

node_setup runs in one server per node (`discoro.cluster.node_gates`); what it left in the
globals (names it added or rebound) travels to the node's other servers (`changed_globals`,
`install_globals`), so every server of the node sees them, as the original's forked servers
did.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from typing import TYPE_CHECKING

from discoro.cluster import sources
from discoro.cluster.shipping import dumps
from discoro.core.coro import Coro
from discoro.errors import MonitorException

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from discoro.cluster.namespace import Namespace


async def run_hook(
    namespace: Namespace,
    name: str,
    args: bytes,
    me: Coro,
    timeout: float | None = None,
    cwd: Path | None = None,
) -> str | None:
    """Run hook ``name`` with ``args`` (cloudpickle of ``(args, kwargs)``, or empty) in
    working directory ``cwd`` (None: as it is) for at most ``timeout`` seconds; None when
    it succeeded, else why it failed. ``me`` (the calling coroutine) monitors it, so its
    failure is reported here, once, and not also as an uncaught exception."""
    with _working_directory(cwd):
        try:
            hook = namespace.lookup(name)
            positional, keywords = namespace.loads(args) if args else ((), {})
            job = Coro(hook, *positional, **keywords)
        except Exception:
            return f"{name} could not start:\n{traceback.format_exc()}"
        job.notify(me)
        value = await job.finish(timeout)
        if job.is_alive():
            job.terminate()
            return f"{name} did not finish within {timeout:g} s; abandoned"
    exc_info = job._exc_info
    if exc_info is not None:
        return f"{name} failed:\n{sources.format_failure(exc_info)}".rstrip()
    if value != 0:
        return f"{name} returned {value!r} (0 means success)"
    return None


@contextlib.contextmanager
def _working_directory(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


async def wait_for(me: Coro, kind: type) -> object:
    """The next message of type ``kind`` for ``me`` (monitor reports of hooks are skipped)."""
    while True:
        message = await me.receive()
        if isinstance(message, kind):
            return message
        if not isinstance(message, MonitorException):
            continue


def snapshot(namespace: Namespace) -> dict[str, object]:
    return dict(namespace.globals)


def changed_globals(namespace: Namespace, before: dict[str, object]) -> bytes:
    """Cloudpickle of the globals added or rebound since ``before`` (ValueError naming the
    ones that cannot be pickled)."""
    changed = {
        name: value
        for name, value in namespace.globals.items()
        if not name.startswith("__") and (name not in before or before[name] is not value)
    }
    try:
        return dumps(changed)
    except Exception as exc:
        raise ValueError(
            f"its globals {sorted(changed)} cannot be sent to the node's other servers: {exc}"
        ) from exc


def install_globals(namespace: Namespace, data: bytes) -> None:
    """Put the node_setup globals from ``data`` into ``namespace``."""
    values = namespace.loads(data)
    if not isinstance(values, dict):
        raise ValueError(f"node_setup globals must be a dict, not {type(values).__name__}")
    for name, value in values.items():
        namespace.define(name, value)
