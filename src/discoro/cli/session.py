"""``--ssh-session``: how ``discoro ssh`` runs ``discoronode`` and ``discoro`` on a remote host.

Rules (what the launcher relies on):
- The cluster secret arrives as the first line of stdin (an empty line: the program's own
  default secret), never on the command line, where ``ps`` and ``/proc/*/cmdline`` show it.
- The program is tied to the SSH session: the end of stdin (the launcher quit, was killed, or
  its connection dropped, so sshd closed the pipe) stops it as a ``quit`` line would.
- Without ``-i`` it binds to the address the launcher reached it at: the server half of
  ``$SSH_CONNECTION``, an address of this host by construction (the default address choice
  can name another interface, or one of the machine's other network namespaces).
- Output to a session that is gone is dropped: writing to the closed pipe must not end the
  program with a traceback before it has stopped its server processes.
"""

from __future__ import annotations

import io
import os
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    import argparse

SESSION_GRACE = 4.0  # node: seconds for servers to quit before SIGTERM (+3 s, +3 s SIGKILL)


def add_session_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ssh-session", action="store_true",
        help="started by `discoro ssh`: the secret is the first line of stdin, the end of "
        "stdin stops the program, the default address is the one SSH reached",
    )  # fmt: skip


def ssh_server_address(environ: dict[str, str] | None = None) -> str | None:
    """The local address of this SSH session (``$SSH_CONNECTION`` is ``client_addr
    client_port server_addr server_port``); None without one, or for IPv6."""
    words = (os.environ if environ is None else environ).get("SSH_CONNECTION", "").split()
    if len(words) != 4 or ":" in words[2]:
        return None
    return words[2]


class SessionOutput(io.TextIOBase):
    """A text stream that forwards to ``stream`` until a write fails, then drops everything."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self.lost = False

    def write(self, text: str) -> int:
        if not self.lost:
            try:
                self._stream.write(text)
                self._stream.flush()
            except (OSError, ValueError):
                self.lost = True
        return len(text)

    def flush(self) -> None:
        if not self.lost:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self.lost = True

    def writable(self) -> bool:
        return True


def enter_session(args: argparse.Namespace) -> None:
    """Apply ``--ssh-session`` (see the module rules) to the parsed ``args`` (``secret``,
    ``node``): read the secret line, choose the address, guard stdout and stderr. Call it
    before logging is configured (its handler keeps the stream it finds)."""
    if not args.ssh_session:
        return
    line = sys.stdin.readline()
    secret = line.rstrip("\r\n")
    if secret:
        args.secret = secret
    if args.node is None:
        args.node = ssh_server_address()
    sys.stdout = SessionOutput(sys.stdout)
    sys.stderr = SessionOutput(sys.stderr)
