"""The command lines that start a discoro cluster inside a Slurm allocation.

A batch script runs on the first host of its allocation. There it starts the shared
scheduler (the ``discoro`` program) in the background, then one ``discoronode`` per
allocated host with ``srun`` (one task per host), and finally the user's client, which finds
the scheduler at ``$DISCORO_SCHEDULER`` (``host:port``). `slurm_commands` builds those lines
from Slurm's environment; `script` writes them as a shell fragment (``discoro slurm
--print``) for the batch script to ``eval``.

Which side starts first does not matter: the scheduler knows every host (``--node``, so it
introduces itself to each again with backoff until they answer), and each node introduces
itself to the scheduler's host (``--peer``). The fragment stops both at the end of the
batch script (a ``trap`` on EXIT); Slurm ends the job's steps at its end in any case.
"""

from __future__ import annotations

import re
import shlex
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

DEFAULT_SCHEDULER_PORT = 51349
_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")


def expand_hostlist(text: str) -> list[str]:
    """Slurm's compressed host list (``node[01-03,07],gpu5``) as host names, in order;
    ValueError for text that is not one."""
    hosts: list[str] = []
    for item in _split_top(text.strip()):
        hosts.extend(_expand(item, text))
    if not hosts:
        raise ValueError(f"empty host list {text!r}")
    return hosts


def _split_top(text: str) -> list[str]:
    """``text`` split at the commas that are not inside brackets."""
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth < 0 or depth > 1:
            raise ValueError(f"bad brackets in host list {text!r}")
        if char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth:
        raise ValueError(f"bad brackets in host list {text!r}")
    items.append(text[start:])
    return [item for item in items if item]


def _expand(item: str, whole: str) -> list[str]:
    opening = item.find("[")
    if opening < 0:
        if "]" in item:
            raise ValueError(f"bad brackets in host list {whole!r}")
        return [item]
    closing = item.index("]", opening)
    prefix, ranges, rest = item[:opening], item[opening + 1 : closing], item[closing + 1 :]
    tails = _expand(rest, whole) if rest else [""]
    names: list[str] = []
    for part in ranges.split(","):
        match = _RANGE.match(part.strip())
        if match is None:
            raise ValueError(f"bad range {part!r} in host list {whole!r}")
        first, last = match[1], match[2] or match[1]
        if int(last) < int(first):
            raise ValueError(f"bad range {part!r} in host list {whole!r}")
        width = len(first) if first.startswith("0") else 0
        for number in range(int(first), int(last) + 1):
            names.extend(f"{prefix}{number:0{width}d}{tail}" for tail in tails)
    return names


@dataclass
class SlurmCommands:
    """What the batch script runs: ``scheduler`` on its own host, ``nodes`` (an ``srun``
    command) for every host; the client reaches the scheduler at ``location``."""

    job: str
    hosts: list[str]
    location: str
    scheduler: list[str]
    nodes: list[str]


def slurm_commands(
    environ: Mapping[str, str],
    python: str | None = None,
    port: int = DEFAULT_SCHEDULER_PORT,
    node_options: Sequence[str] = (),
    scheduler_options: Sequence[str] = (),
) -> SlurmCommands:
    """The command lines for the allocation described by ``environ`` (Slurm's variables:
    ``SLURM_JOB_NODELIST``, ``SLURM_CPUS_PER_TASK`` for ``-c`` unless the node options have
    one, ``SLURM_JOB_ID``). ``python``: the interpreter with discoro (default: this one).
    ValueError, naming the variable, outside an allocation or for a bad port."""
    listing = environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST")
    if not listing:
        raise ValueError("SLURM_JOB_NODELIST is not set: run this inside a Slurm allocation")
    if not 0 < port < 65536:
        raise ValueError(f"scheduler port {port} is out of range")
    hosts = expand_hostlist(listing)
    first, python = hosts[0], python or sys.executable
    scheduler = [python, "-m", "discoro.cli.scheduler", "scheduler", "--tcp_port", str(port)]
    for host in hosts:
        scheduler += ["--node", host]
    scheduler += list(scheduler_options)
    node = [python, "-m", "discoro.cli.node", "--peer", first]
    cpus = environ.get("SLURM_CPUS_PER_TASK", "")
    if cpus.isdigit() and not {"-c", "--cpus"} & set(node_options):
        node += ["-c", cpus]
    node += list(node_options)
    count = str(len(hosts))
    srun = ["srun", f"--nodes={count}", f"--ntasks={count}", "--ntasks-per-node=1", *node]
    job = environ.get("SLURM_JOB_ID", "?")
    return SlurmCommands(job, hosts, f"{first}:{port}", scheduler, srun)


def script(commands: SlurmCommands) -> str:
    """A shell fragment (for ``eval`` in the batch script) that starts the cluster, exports
    ``DISCORO_SCHEDULER`` and stops the cluster when the script exits."""

    def line(words: list[str]) -> str:
        return " ".join(shlex.quote(word) for word in words)

    return "\n".join(
        [
            f"# discoro on Slurm job {commands.job}: the scheduler on {commands.hosts[0]}, "
            f"a node on each of {len(commands.hosts)} hosts",
            f"export DISCORO_SCHEDULER={shlex.quote(commands.location)}",
            f"{line(commands.scheduler)} </dev/null &",
            "DISCORO_PIDS=$!",
            f"{line(commands.nodes)} </dev/null &",
            'DISCORO_PIDS="$DISCORO_PIDS $!"',
            "trap 'kill $DISCORO_PIDS 2>/dev/null; wait $DISCORO_PIDS 2>/dev/null' EXIT",
        ]
    )
