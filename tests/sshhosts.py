"""Real OpenSSH servers on hosts of a `netns.Topology`, for the ``discoro ssh`` tests.

`SSHHosts` runs ``/usr/sbin/sshd`` (Debian's openssh-server) as root inside chosen host
namespaces, each with its own configuration in a temporary folder: a throwaway host key, an
``authorized_keys`` holding a throwaway user key, no PAM, no passwords, and its own
``TMPDIR`` for sessions (``SetEnv``), so the hosts' default discoro folders differ as on
separate machines even though they share this filesystem. It writes a ``known_hosts`` file
that pins every host key. The remote "user" is root with the throwaway key; the remote
interpreter is this test run's Python.

`processes_in` lists the processes that run in a namespace (compared by the inode of
``/proc/PID/ns/net``), so tests can check by PID what a host still runs.
"""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from netns import Topology

SSHD = "/usr/sbin/sshd"

SSHD_CONFIG = """\
ListenAddress {address}
Port 22
HostKey {folder}/host_key
PidFile {folder}/sshd.pid
AuthorizedKeysFile {folder}/authorized_keys
UsePAM no
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
X11Forwarding no
AllowTcpForwarding no
PrintMotd no
SetEnv TMPDIR={folder}/tmp
LogLevel VERBOSE
"""


def sshd_unavailable() -> str | None:
    """Why real-sshd tests cannot run here (None if they can)."""
    for program in (SSHD, shutil.which("ssh-keygen")):
        if not program or not os.path.exists(program):
            return "the SSH tests need openssh-server (sshd, ssh-keygen): scripts/test.sh"
    return None


def keygen(path: Path) -> str:
    """A new ed25519 key pair at ``path``; its public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "discoro-test", "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return path.with_suffix(".pub").read_text().strip()


def netns_inode(name: str) -> int:
    return os.stat(f"/run/netns/{name}").st_ino


def processes_in(namespace: str) -> dict[int, str]:
    """PID -> command line of every process in the network namespace ``namespace``."""
    inode = netns_inode(namespace)
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino != inode:
                continue
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue  # gone meanwhile
        if raw:  # zombies and kernel threads have none
            found[int(entry)] = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def remote_programs(namespace: str) -> dict[int, str]:
    """The discoro processes (not sshd) running in ``namespace``."""
    return {pid: line for pid, line in processes_in(namespace).items() if "discoro" in line}


def alive(pids: Iterable[int]) -> dict[int, str]:
    """The processes of ``pids`` that have not ended, with their state and parent. A zombie
    has ended (only its parent's wait is missing); a process on its way out has no command
    line any more but is still running, so it counts as alive here."""
    found = {}
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if not fields.get("State", "").startswith("Z"):
            found[pid] = f"{fields.get('Name')} {fields.get('State')} ppid {fields.get('PPid')}"
    return found


def wait_until_gone(
    namespaces: list[str], timeout: float, pids: Iterable[int] = ()
) -> dict[int, str]:
    """Wait until no discoro process runs in ``namespaces`` and none of ``pids`` is alive;
    what is still there at the end (empty if all went)."""
    deadline = time.monotonic() + timeout
    pids = list(pids)
    while True:
        left = {pid: line for ns in namespaces for pid, line in remote_programs(ns).items()}
        left.update(alive(pids))
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)  # polling /proc: there is no event for another namespace's exit


class SSHServer:
    """One sshd process in one namespace; its log lines are kept."""

    def __init__(self, namespace: str, config: Path) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", namespace, SSHD, "-D", "-e", "-f", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line.rstrip("\n"))
            self.lines.put(line)

    def wait_listening(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if "Server listening on" in line:
                return
        raise AssertionError("sshd did not start; its output:\n" + "\n".join(self.output))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class SSHHosts:
    """sshd on the hosts ``indexes`` of ``topology`` (see the module docstring)."""

    def __init__(self, topology: Topology, indexes: list[int], folder: Path) -> None:
        self.topology = topology
        self.indexes = indexes
        self.folder = folder
        self.user_key = folder / "user_key"
        self.known_hosts = folder / "known_hosts"
        self.servers: list[SSHServer] = []

    @property
    def addresses(self) -> list[str]:
        return [self.topology.addresses[i] for i in self.indexes]

    @property
    def namespaces(self) -> list[str]:
        return [self.topology.hosts[i] for i in self.indexes]

    def start(self) -> SSHHosts:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation
        user_public = keygen(self.user_key)
        pins = []
        try:
            for index, address, namespace in zip(
                self.indexes, self.addresses, self.namespaces, strict=True
            ):
                host = self.folder / f"host{index}"
                (host / "tmp").mkdir(parents=True)
                host_public = keygen(host / "host_key")
                pins.append(f"{address} {' '.join(host_public.split()[:2])}")
                (host / "authorized_keys").write_text(user_public + "\n")
                config = host / "sshd_config"
                config.write_text(SSHD_CONFIG.format(address=address, folder=host))
                self.servers.append(SSHServer(namespace, config))
            self.known_hosts.write_text("\n".join(pins) + "\n")
            for server in self.servers:
                server.wait_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def launcher_args(self) -> list[str]:
        """``discoro ssh`` options that reach these hosts as root with the throwaway key."""
        return [
            "--ssh-user", "root", "--ssh-key", str(self.user_key),
            "--known-hosts", str(self.known_hosts),
        ]  # fmt: skip

    def connect_options(self) -> dict[str, object]:
        return {
            "username": "root",
            "client_keys": [str(self.user_key)],
            "known_hosts": str(self.known_hosts),
        }

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        for namespace in self.namespaces:
            with contextlib.suppress(OSError):
                for pid in remote_programs(namespace):
                    os.kill(pid, 9)  # a failed test must not leave servers behind
