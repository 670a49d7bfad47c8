"""`SSHCluster`: a discoro cluster on other machines, started over SSH from a Python program.

    with discoro.SSHCluster(["alpha", "beta"], connect_options={"username": "me"}) as cluster:
        computation.schedule(cluster.scheduler_location)

The launch itself (`discoro.cluster.ssh_launch.Launcher`) runs on an asyncio loop in a
thread of its own, so it is independent of this process's discoro kernel and usable from
plain synchronous code. Construction blocks until the cluster is up (or raises
`SSHClusterError` with one line naming the host, having stopped whatever it started);
`close()` (or leaving the ``with`` block) stops every remote program and waits for that.
A program that exits without closing loses its SSH sessions, and the remote programs stop
by themselves (they are tied to their sessions).
"""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, TypeVar

from discoro.cluster.ssh_commands import split_options
from discoro.cluster.ssh_launch import Launcher, LaunchError, LaunchSpec
from discoro.errors import DiscoroError

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine, Mapping, Sequence

    from discoro.net.location import Location

T = TypeVar("T")


class SSHClusterError(DiscoroError):
    """The cluster did not start: a host could not be reached or used (``host`` names it;
    None when no host is to blame, e.g. the wait for the start ran out)."""

    def __init__(self, message: str, host: str | None = None) -> None:
        super().__init__(message)
        self.host = host


class SSHCluster:
    """A shared scheduler and a node on the first host, a node on every other host.

    ``hosts``: host names or addresses (one node each; the first also runs the scheduler).
    ``connect_options``: keyword arguments of ``asyncssh.connect`` (``username``, ``port``,
    ``client_keys``, ``known_hosts``, ...; by default those of the user's SSH setup).
    ``node_options`` / ``scheduler_options``: arguments of ``discoronode`` / ``discoro``,
    as a list or one string split with shell rules (``"-c 4 --dest_path /scratch"``).
    ``remote_python``: the remote interpreter that has discoro installed (``python3``).
    ``secret``: the cluster secret (default: this machine's, ``$DISCORO_SECRET`` or
    ``~/.discoro/secret``, so a client here can use the cluster); the remote programs read it
    from stdin, it never appears on a command line.
    ``report``: called with a line per event (a host up, a program that ended by itself).

    Attributes: ``scheduler_location`` (give it to `Computation.schedule`), ``nodes`` (host
    -> the address its node listens at).
    """

    def __init__(
        self,
        hosts: Sequence[str],
        connect_options: Mapping[str, object] | None = None,
        node_options: str | Sequence[str] | None = None,
        scheduler_options: str | Sequence[str] | None = None,
        remote_python: str | None = None,
        secret: str | None = None,
        *,
        connect_timeout: float = 10.0,
        start_timeout: float = 60.0,
        report: Callable[[str], None] | None = None,
    ) -> None:
        spec = LaunchSpec(
            hosts=[hosts] if isinstance(hosts, str) else list(hosts),
            connect_options=dict(connect_options or {}),
            node_options=split_options(node_options, "node_options"),
            scheduler_options=split_options(scheduler_options, "scheduler_options"),
            remote_python=remote_python or "python3",
            secret=secret or default_secret(),
            connect_timeout=connect_timeout,
            start_timeout=start_timeout,
        )
        self._launcher = Launcher(spec, report)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="discoro-ssh", daemon=True
        )
        self._thread.start()
        self._closed = False
        started = asyncio.run_coroutine_threadsafe(self._launcher.start(), self._loop)
        try:
            self.scheduler_location: Location = started.result()
        except LaunchError as exc:
            self._end_loop()
            raise SSHClusterError(str(exc), exc.host) from None
        except BaseException:  # e.g. Ctrl-C while waiting: stop what was started
            started.cancel()
            self._run(self._launcher.stop())
            self._end_loop()
            raise
        self.nodes: dict[str, str] = dict(self._launcher.node_addresses)

    def _run(self, step: Coroutine[object, object, T]) -> T:
        return asyncio.run_coroutine_threadsafe(step, self._loop).result()

    def close(self) -> None:
        """Stop every remote program and close the SSH connections (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._run(self._launcher.stop())
        self._end_loop()

    def _end_loop(self) -> None:
        """Stop the launch loop and its thread, and the loop's resolver threads too."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10.0)
        if not self._thread.is_alive():
            self._loop.run_until_complete(self._loop.shutdown_default_executor())
            self._loop.close()

    def __enter__(self) -> SSHCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"scheduler at {self.scheduler_location}"
        return f"<SSHCluster {', '.join(self._launcher.spec.hosts)}: {state}>"


def default_secret() -> str:
    """This machine's cluster secret (what a client here uses by default)."""
    from discoro.net.secret import resolve_secret

    return resolve_secret(None).decode()
