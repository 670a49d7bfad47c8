"""`Launcher`: start a discoro cluster over SSH (asyncssh) and stop it again.

Theory of operation:
- Connect to every host at once. Nothing is started anywhere until every host has accepted
  the connection and the key, so a host that cannot be reached, refuses the key or shows an
  unknown host key fails the launch with one `LaunchError` naming that host (bounded by
  ``connect_timeout``), and nothing was left running on the others.
- Then the shared scheduler (the ``discoro`` program) on the first host; once it printed its
  location, a node on every host (the first too) told to dial it with ``--peer``, so nodes
  find it on networks without broadcast. Each remote program is tied to its SSH session
  (`discoro.cluster.ssh_commands`): the secret goes on its stdin, and the end of its stdin,
  which comes when this launcher stops, dies or loses its connection, stops it.
- Every remote program's output is read all the time (a full SSH window would block it);
  its last lines are kept for error messages and go to the log at DEBUG.
- `stop` asks every program to quit (a ``quit`` line, then the end of stdin): the nodes
  first, then the scheduler, each wait bounded by ``stop_timeout``; then the connections
  close, which ends whatever still runs. `stop` works at any point, also after a failed or
  cancelled `start`, and more than once.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncssh

from discoro.cluster import ssh_commands as commands
from discoro.core.log import logger
from discoro.errors import DiscoroError
from discoro.net.location import Location

if TYPE_CHECKING:
    import re
    from collections.abc import Callable, Coroutine, Iterable

KEPT_LINES = 40


class LaunchError(DiscoroError):
    """A host could not be used; ``host`` names it, the message says why (one line)."""

    def __init__(self, host: str, reason: str) -> None:
        super().__init__(f"{host}: {reason}")
        self.host = host
        self.reason = reason


@dataclass
class LaunchSpec:
    """What to start where (see `discoro.SSHCluster` for the meaning of each)."""

    hosts: list[str]
    connect_options: dict[str, object] = field(default_factory=dict)
    node_options: list[str] = field(default_factory=list)
    scheduler_options: list[str] = field(default_factory=list)
    remote_python: str = "python3"
    secret: str | None = None
    connect_timeout: float = 10.0
    start_timeout: float = 60.0
    stop_timeout: float = 15.0

    def check(self) -> None:
        """ValueError for a spec that cannot work (before anything connects)."""
        if not self.hosts:
            raise ValueError("no hosts given")
        seen: set[str] = set()
        for host in self.hosts:
            name = host.rpartition("@")[2]
            if not name or name.startswith("-") or any(c.isspace() for c in host):
                raise ValueError(f"bad host name {host!r}")
            if host in seen:
                raise ValueError(f"host {host!r} is given twice (one node per host)")
            seen.add(host)
        commands.secret_line(self.secret)


@dataclass
class RemoteProgram:
    """One program started on one host: its SSH process and what it printed."""

    host: str
    role: str  # "scheduler" or "node"
    process: asyncssh.SSHClientProcess[str]
    lines: deque[str] = field(default_factory=lambda: deque(maxlen=KEPT_LINES))
    pending: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    reader: asyncio.Task[None] | None = None
    ready: bool = False  # it printed its ready line

    def last_words(self) -> str:
        """The line that best says why it failed: its last error line, else its last line."""
        for line in reversed(self.lines):
            if "error" in line.lower():
                return line.strip()
        return self.lines[-1].strip() if self.lines else "(no output)"


class Launcher:
    """Starts (`start`) and stops (`stop`) one cluster; ``report`` gets one line per event
    (a host up, a program that ended by itself)."""

    def __init__(self, spec: LaunchSpec, report: Callable[[str], None] | None = None) -> None:
        spec.check()
        self.spec = spec
        self.report = report or (lambda line: logger.info("%s", line))
        self.connections: dict[str, asyncssh.SSHClientConnection] = {}
        self.programs: list[RemoteProgram] = []
        self.scheduler_location: Location | None = None
        self.node_addresses: dict[str, str] = {}
        self.stopping = False
        self.lost: asyncio.Queue[RemoteProgram] = asyncio.Queue()  # ended by themselves

    # -- starting ----------------------------------------------------------------------------

    async def start(self) -> Location:
        """Connect, start the scheduler and the nodes; the scheduler's location. On failure
        (`LaunchError`) or cancellation everything started is stopped first."""
        try:
            await self._connect_all()
            first = self.spec.hosts[0]
            scheduler = await self._start(
                first,
                "scheduler",
                commands.scheduler_command(self.spec.remote_python, self.spec.scheduler_options),
                commands.SCHEDULER_READY,
            )
            location = Location(scheduler[1], int(scheduler[2]))
            self.scheduler_location = location
            self.report(f"{first}: scheduler ready at {location}")
            if location.addr.startswith("127.") and len(self.spec.hosts) > 1:
                self.report(
                    f"warning: the scheduler listens at a loopback address ({location.addr}): "
                    "nodes on other hosts cannot reach it (reach the first host by an address "
                    "the others can use, or give the scheduler -i ADDR)"
                )
            node = commands.node_command(
                self.spec.remote_python, str(location), self.spec.node_options
            )
            await self._gather(self._start_node(host, node) for host in self.spec.hosts)
            return location
        except BaseException:
            await self.stop()
            raise

    async def _gather(self, steps: Iterable[Coroutine[object, object, None]]) -> None:
        """Run ``steps`` together; the first failure cancels the others."""
        tasks = [asyncio.ensure_future(step) for step in steps]
        try:
            for done in asyncio.as_completed(tasks):
                await done
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _connect_all(self) -> None:
        await self._gather(self._connect(host) for host in self.spec.hosts)

    async def _connect(self, host: str) -> None:
        options = dict(self.spec.connect_options)
        port = options.pop("port", ())
        user, at, name = host.rpartition("@")
        if at:  # ssh's user@host
            options["username"] = user
        try:
            async with asyncio.timeout(self.spec.connect_timeout):
                connection = await asyncssh.connect(
                    name, port, connect_timeout=self.spec.connect_timeout, **options
                )
        except asyncssh.PermissionDenied as exc:
            raise LaunchError(host, f"the SSH server refused the key ({exc.reason})") from None
        except asyncssh.HostKeyNotVerifiable as exc:
            raise LaunchError(
                host, f"host key not verifiable ({exc.reason}): check known_hosts"
            ) from None
        except asyncssh.DisconnectError as exc:
            raise LaunchError(host, f"SSH connection refused: {exc.reason}") from None
        except TimeoutError:
            raise LaunchError(
                host, f"no SSH connection within {self.spec.connect_timeout:g} s"
            ) from None
        except OSError as exc:  # asyncio's text repeats the address: the errno's is plainer
            if isinstance(exc, socket.gaierror) or not exc.errno or exc.errno < 0:
                why = exc.strerror or str(exc)  # a name that does not resolve, ...
            else:
                why = os.strerror(exc.errno)
            raise LaunchError(host, f"cannot connect to SSH port {port or 22}: {why}") from None
        except asyncssh.Error as exc:
            raise LaunchError(host, f"cannot connect: {exc.reason}") from None
        except ValueError as exc:  # a key that does not load, a bad ~/.ssh/config, ...
            raise LaunchError(host, f"cannot connect: {exc}") from None
        self.connections[host] = connection

    async def _start_node(self, host: str, command: str) -> None:
        match = await self._start(host, "node", command, commands.NODE_READY)
        self.node_addresses[host] = match[2]
        self.report(f"{host}: node ready: {match[1]} processes at {match[2]}")

    async def _start(
        self, host: str, role: str, command: str, ready: re.Pattern[str]
    ) -> re.Match[str]:
        """Run ``command`` on ``host``; the match of its ready line (LaunchError if it ends
        or stays silent for ``start_timeout`` seconds first)."""
        logger.debug("%s: running %s", host, command)
        try:
            process = await self.connections[host].create_process(
                command, stderr=asyncssh.STDOUT, encoding="utf-8"
            )
        except (OSError, asyncssh.Error) as exc:
            raise LaunchError(host, f"cannot start the {role}: {exc}") from None
        program = RemoteProgram(host, role, process)
        self.programs.append(program)
        process.stdin.write(commands.secret_line(self.spec.secret))
        program.reader = asyncio.ensure_future(self._read(program))
        try:
            async with asyncio.timeout(self.spec.start_timeout):
                while (line := await program.pending.get()) is not None:
                    match = ready.match(line)
                    if match:
                        program.ready = True
                        return match
        except TimeoutError:
            raise LaunchError(
                host, f"the {role} was not ready within {self.spec.start_timeout:g} s: "
                f"{program.last_words()}"
            ) from None  # fmt: skip
        status = process.exit_status
        raise LaunchError(
            host, f"the {role} exited (status {status}): {program.last_words()}"
        ) from None

    async def _read(self, program: RemoteProgram) -> None:
        """Read everything the program prints until it ends; then report it if it ended by
        itself after it was ready."""
        try:
            async for line in program.process.stdout:
                text = line.rstrip("\r\n")
                if not text.strip():
                    continue  # blank lines say nothing (asyncssh also ends with one)
                program.lines.append(text)
                logger.debug("%s %s: %s", program.host, program.role, text)
                program.pending.put_nowait(text)
            with contextlib.suppress(asyncssh.Error, OSError):
                await program.process.wait()
        except (asyncssh.Error, OSError) as exc:
            program.lines.append(f"(connection lost: {exc})")
        program.pending.put_nowait(None)
        if not self.stopping and program.ready:
            status = program.process.exit_status
            self.report(f"{program.host}: {program.role} ended (status {status})")
            self.lost.put_nowait(program)

    # -- stopping ----------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop every program started and close every connection (see the module notes)."""
        self.stopping = True
        nodes = [p for p in self.programs if p.role == "node"]
        await asyncio.gather(*(self._quit(p) for p in nodes))
        await asyncio.gather(*(self._quit(p) for p in self.programs if p.role != "node"))
        connections = list(self.connections.values())
        self.connections.clear()
        for connection in connections:
            connection.close()
        for connection in connections:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5.0):
                    await connection.wait_closed()

    def abort(self) -> None:
        """Close every connection now, without waiting for the programs to quit (a second
        Ctrl-C): the end of their sessions stops them by themselves."""
        self.stopping = True
        for connection in self.connections.values():
            connection.close()

    async def _quit(self, program: RemoteProgram) -> None:
        process = program.process
        with contextlib.suppress(asyncssh.Error, OSError, RuntimeError):
            process.stdin.write("quit\n")
            process.stdin.write_eof()
        try:
            async with asyncio.timeout(self.spec.stop_timeout):
                if program.reader is not None:
                    await asyncio.shield(program.reader)
                await process.wait_closed()
        except TimeoutError:
            logger.warning(
                "%s: the %s did not stop within %g s; closing its connection",
                program.host,
                program.role,
                self.spec.stop_timeout,
            )
        except (asyncssh.Error, OSError):
            pass
