"""``discoro slurm --print``: the command lines for a Slurm allocation, and that they work.

Slurm itself is not here: the lines are checked word for word for an allocation described
by its environment variables, and the printed fragment is run by bash as a batch script
would, with a stand-in ``srun`` that starts the node command on this host (one "allocated
host": ``localhost``) and a client that schedules at ``$DISCORO_SCHEDULER``.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from discoro.cluster.slurm import expand_hostlist, script, slurm_commands
from procs import SRC, free_port

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("text", "hosts"),
    [
        ("node01", ["node01"]),
        ("node[01-03,07],gpu5", ["node01", "node02", "node03", "node07", "gpu5"]),
        ("n[8-10]", ["n8", "n9", "n10"]),
        ("r[1-2]-n[1-2]", ["r1-n1", "r1-n2", "r2-n1", "r2-n2"]),
        ("a,b[009-010]", ["a", "b009", "b010"]),
    ],
)
def test_host_lists_expand_as_slurm_writes_them(text: str, hosts: list[str]) -> None:
    assert expand_hostlist(text) == hosts


@pytest.mark.parametrize("text", ["", "node[01-03", "node]1[", "node[3-1]", "node[a-b]"])
def test_bad_host_lists_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="host list"):
        expand_hostlist(text)


def test_commands_for_an_allocation() -> None:
    environ = {
        "SLURM_JOB_NODELIST": "node[01-03]",
        "SLURM_CPUS_PER_TASK": "8",
        "SLURM_JOB_ID": "42",
    }
    commands = slurm_commands(environ, python="/opt/venv/bin/python", port=4000)
    assert commands.location == "node01:4000"
    assert commands.scheduler == [
        "/opt/venv/bin/python", "-m", "discoro.cli.scheduler", "scheduler", "--tcp_port", "4000",
        "--node", "node01", "--node", "node02", "--node", "node03",
    ]  # fmt: skip
    assert commands.nodes == [
        "srun", "--nodes=3", "--ntasks=3", "--ntasks-per-node=1",
        "/opt/venv/bin/python", "-m", "discoro.cli.node", "--peer", "node01", "-c", "8",
    ]  # fmt: skip
    text = script(commands)
    assert "export DISCORO_SCHEDULER=node01:4000\n" in text
    assert "srun --nodes=3 --ntasks=3 --ntasks-per-node=1 /opt/venv/bin/python" in text
    # an explicit -c wins over SLURM_CPUS_PER_TASK
    mine = slurm_commands(environ, python="py", node_options=["-c", "2"])
    assert mine.nodes[-2:] == ["-c", "2"] and mine.nodes.count("-c") == 1


def test_outside_an_allocation_it_says_so() -> None:
    with pytest.raises(ValueError, match="SLURM_JOB_NODELIST is not set"):
        slurm_commands({})
    result = subprocess.run(
        [sys.executable, "-m", "discoro.cli.scheduler", "slurm", "--print"],
        capture_output=True, text=True, timeout=30,
        env={k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
        | {"PYTHONPATH": SRC},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "discoro slurm: error: SLURM_JOB_NODELIST is not set: run this inside a Slurm allocation"
    )


FAKE_SRUN = """#!/bin/sh
# stands in for srun on one allocated host: drop srun's own options, run the command
while [ $# -gt 0 ]; do case "$1" in --*) shift ;; *) break ;; esac; done
exec "$@"
"""

CLIENT = """
import os, discoro

def where(client, coro=None):
    yield coro.sleep(0)
    client.send("ran at %s" % coro.location)

def main(coro=None):
    computation = discoro.Computation([where])
    print("SCHEDULED", (yield computation.schedule(os.environ["DISCORO_SCHEDULER"])), flush=True)
    for _ in range(300):
        procs = yield computation.procs()
        if procs:
            break
        yield coro.sleep(0.1)
    yield computation.run(where, coro)
    print((yield coro.receive(timeout=20)), flush=True)
    yield computation.close()

discoro.AsynCoro(node="127.0.0.1", udp_port=int(os.environ["UDP_PORT"]))
discoro.Coro(main).value()
"""

BATCH = """
set -e
eval "$("$PYTHON" -m discoro.cli.scheduler slurm --print --port "$PORT" -c 1 \\
    --node-options "-i 127.0.0.1 -u $UDP_PORT --dest_path $DEST" \\
    --scheduler-options "-i 127.0.0.1 -u $UDP_PORT")"
echo "scheduler at $DISCORO_SCHEDULER"
"$PYTHON" client.py
"""


@pytest.mark.timeout(120)
def test_the_printed_lines_start_a_cluster_that_runs_a_client(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text(FAKE_SRUN)
    (bin_dir / "srun").chmod(stat.S_IRWXU)
    (tmp_path / "client.py").write_text(CLIENT)
    (tmp_path / "dest").mkdir()
    env = dict(
        os.environ,
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        PYTHONPATH=SRC,
        PYTHON=sys.executable,
        PORT=str(free_port()),
        UDP_PORT=str(free_port()),
        DEST=str(tmp_path / "dest"),
        SLURM_JOB_NODELIST="localhost",
        SLURM_JOB_ID="7",
    )
    result = subprocess.run(
        ["bash", "-c", BATCH], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=100
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"scheduler at localhost:{env['PORT']}" in result.stdout, output
    assert "SCHEDULED 0" in result.stdout, output
    assert "ran at 127.0.0.1:" in result.stdout, output
    print(output)
