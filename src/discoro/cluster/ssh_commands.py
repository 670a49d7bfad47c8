"""The command lines ``discoro ssh`` runs on remote hosts, and the lines it waits for.

Each remote program runs as ``exec PYTHON -m MODULE ... --ssh-session ...`` (the ``exec``
leaves no shell behind, so the PID that sshd started is the program's). ``--ssh-session``
(`discoro.cli.session`) makes it read the secret from the first line of stdin and stop at the
end of stdin, which ties it to the SSH session. Every word is shell-quoted: options given as
one string are split here with shell rules first, so a quoting mistake is found locally.

Invariant: no secret ever enters a command line built here; `secret_line` is what goes on
stdin instead.
"""

from __future__ import annotations

import re
import shlex
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

SCHEDULER_MODULE = "discoro.cli.scheduler"
NODE_MODULE = "discoro.cli.node"
SCHEDULER_READY = re.compile(r"^discoro: scheduler ready at (\S+):(\d+)$")
NODE_READY = re.compile(r"^discoronode: (\d+) processes ready at (\S+)$")
# options the launcher sets itself: given in node/scheduler options they would conflict
RESERVED = {"--ssh-session", "-s", "--secret"}


def split_options(options: str | Sequence[str] | None, what: str) -> list[str]:
    """``options`` as a list of words (a string is split with shell rules); ValueError naming
    ``what`` for bad quoting or an option the launcher sets itself."""
    if options is None:
        return []
    if isinstance(options, str):
        try:
            words = shlex.split(options)
        except ValueError as exc:
            raise ValueError(f"{what} {options!r}: {exc}") from None
    else:
        words = [str(word) for word in options]
    for word in words:
        name = word.split("=", 1)[0]
        if name in RESERVED:
            raise ValueError(
                f"{what}: {name} is set by the launcher (the secret goes to remote programs "
                "on stdin, never on a command line)"
            )
    return words


def remote_command(python: str, module: str, args: Sequence[str]) -> str:
    """The shell command line that runs ``python -m module --ssh-session args``."""
    words = [python, "-m", module, *args]
    return "exec " + " ".join(shlex.quote(word) for word in words)


def scheduler_command(python: str, options: Sequence[str]) -> str:
    return remote_command(python, SCHEDULER_MODULE, ["scheduler", "--ssh-session", *options])


def node_command(python: str, scheduler: str, options: Sequence[str]) -> str:
    """A node that introduces itself to the scheduler at ``scheduler`` (``addr:port``)."""
    return remote_command(python, NODE_MODULE, ["--ssh-session", "--peer", scheduler, *options])


def secret_line(secret: str | None) -> str:
    """The first line of a remote program's stdin (empty: its own default secret)."""
    value = secret or ""
    if "\n" in value or "\r" in value:
        raise ValueError("the cluster secret cannot contain a line break")
    return value + "\n"
