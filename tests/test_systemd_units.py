"""The systemd unit templates shipped in the package (issue 14, "As a service"): they parse
(``systemd-analyze verify``), keep the secret off the command line, and their ExecStart
command line runs (with ``--daemon``, stdin closed) and exits cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from discoro.cli.units import unit_text
from procs import SRC

pytestmark = pytest.mark.timeout(60)

BIN = Path(sys.executable).parent
PROGRAMS = {"discoronode": "DISCORONODE_OPTIONS", "discoro": "DISCORO_SCHEDULER_OPTIONS"}


def printed_unit(program: str) -> str:
    result = subprocess.run(
        [str(BIN / program), "--print-systemd-unit"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return result.stdout


def keys(unit: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in unit.splitlines() if "=" in line and line[0] != "#")


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_units_read_the_secret_from_an_environment_file(program: str) -> None:
    unit = printed_unit(program)
    assert unit == unit_text(program)
    settings = keys(unit)
    assert settings["EnvironmentFile"] == "/etc/discoro/secret.env"
    command = shlex.split(settings["ExecStart"])
    assert command[0] == str(BIN / program)  # this environment's program
    assert "--daemon" in command and f"${PROGRAMS[program]}" in command
    assert not {"-s", "--secret"} & set(command)
    assert settings["KillMode"] == "mixed"  # SIGTERM to the node: it stops its servers


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_units_verify(tmp_path: Path) -> None:
    names = []
    for program in PROGRAMS:
        path = tmp_path / (
            "discoronode.service" if program == "discoronode" else "discoro-scheduler.service"
        )
        path.write_text(printed_unit(program))
        names.append(str(path))
    result = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and result.stderr == "", result.stderr


def exec_start(program: str, options: list[str]) -> list[str]:
    """The unit's command line, with the options variable set as a drop-in would."""
    command = shlex.split(keys(printed_unit(program))["ExecStart"])
    variable = f"${PROGRAMS[program]}"
    at = command.index(variable)
    return [*command[:at], *options, *command[at + 1 :]]


def environment_file(path: Path, secret: str) -> dict[str, str]:
    """What systemd's EnvironmentFile= gives the service: the file's one variable."""
    path.write_text(f"DISCORO_SECRET={secret}\n")
    path.chmod(0o600)
    name, _, value = path.read_text().strip().partition("=")
    env = {k: v for k, v in os.environ.items() if k != "DISCORO_SECRET"}
    env["PYTHONPATH"] = SRC
    env[name] = value
    return env


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_exec_start_runs_as_a_daemon_and_stops_on_sigterm(
    program: str, tmp_path: Path, udp_port: int, cluster_secret: str
) -> None:
    options = ["-i", "127.0.0.1", "-u", str(udp_port), "--dest_path", str(tmp_path)]
    if program == "discoronode":
        options += ["-c", "1", "--force"]
    command = exec_start(program, options)
    env = environment_file(tmp_path / "secret.env", "unit-" + cluster_secret)
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=env,
    )  # fmt: skip
    lines: list[str] = []
    try:
        ready = re.compile(r"^discoronode: 1 processes ready|^discoro: scheduler ready at ")
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if ready.search(line):
                break
        assert proc.poll() is None, lines
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        for member in family:
            assert env["DISCORO_SECRET"] not in " ".join(member.cmdline())
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
        lines += rest.splitlines()
        assert proc.returncode == 0, lines
        assert any(line.endswith("SIGTERM: stopping") for line in lines), lines
        assert not any(member.is_running() and member.status() != "zombie" for member in family)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
