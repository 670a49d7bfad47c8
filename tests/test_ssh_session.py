"""``--ssh-session`` (how ``discoro ssh`` runs the remote programs), without SSH.

The node and the scheduler program read the secret from the first line of stdin, bind to
the server address of ``$SSH_CONNECTION`` when no ``-i`` is given, and stop (with their
server processes) at the end of stdin. Plus the pure parts: command lines, options, the
``host:port`` form of a location.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest

from discoro.cli.session import SessionOutput, ssh_server_address
from discoro.cluster import ssh_commands
from discoro.cluster.ssh_launch import LaunchSpec
from discoro.net.location import Location, as_location
from procs import SRC, free_port

if TYPE_CHECKING:
    from pathlib import Path

SECRET = "session-secret-0123456789abcdef"


def session_program(args: list[str], ssh_connection: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DISCORO_SECRET", "SSH_CONNECTION")}
    env["PYTHONPATH"] = SRC
    env["PYTHONUNBUFFERED"] = "1"
    if ssh_connection:
        env["SSH_CONNECTION"] = ssh_connection
    return subprocess.Popen(
        [sys.executable, "-m", *args, "--ssh-session"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def read_until(popen: subprocess.Popen[str], pattern: str, lines: list[str]) -> re.Match[str]:
    """Read lines (bounded by the test's timeout) until one matches ``pattern``."""
    assert popen.stdout is not None
    for line in popen.stdout:
        lines.append(line.rstrip("\n"))
        match = re.search(pattern, line)
        if match:
            return match
    raise AssertionError(f"no line matching {pattern!r}; output:\n" + "\n".join(lines))


def environ_of(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as stream:
        raw = stream.read().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stream:
                if stream.read().split(")")[-1].split()[0] == "Z":
                    return True
        except OSError:
            return True
        time.sleep(0.1)  # another process's exit has no event to wait on
    return False


@pytest.mark.timeout(90)
def test_node_takes_the_secret_from_stdin_and_stops_at_its_end(tmp_path: Path) -> None:
    node = session_program(
        ["discoro.cli.node", "-c", "1", "-u", str(free_port()), "--dest_path", str(tmp_path)],
        ssh_connection="10.9.9.9 40000 127.0.0.1 22",  # no -i: the SSH server address
    )
    lines: list[str] = []
    try:
        assert node.stdin is not None
        node.stdin.write(SECRET + "\n")
        node.stdin.flush()
        server = int(
            read_until(node, r"process 1 ready at 127\.0\.0\.1:\d+ \(pid (\d+)\)", lines)[1]
        )
        read_until(node, r"^discoronode: 1 processes ready at 127\.0\.0\.1$", lines)
        for pid in (node.pid, server):
            with open(f"/proc/{pid}/cmdline", "rb") as stream:
                assert SECRET.encode() not in stream.read()
        assert environ_of(server)["DISCORO_SECRET"] == SECRET  # from stdin, through the node
        node.stdin.close()  # the SSH session ends
        read_until(node, r"^discoronode: end of stdin: stopping$", lines)
        assert node.wait(30) == 0
        assert gone(server, 10), f"server {server} outlived its node"
    finally:
        if node.poll() is None:
            node.kill()
            node.wait(10)
        assert node.stdout is not None
        node.stdout.close()


@pytest.mark.timeout(60)
def test_scheduler_stops_at_the_end_of_stdin() -> None:
    scheduler = session_program(
        ["discoro.cli.scheduler", "scheduler", "-i", "127.0.0.1", "-u", str(free_port())]
    )
    lines: list[str] = []
    try:
        assert scheduler.stdin is not None
        scheduler.stdin.write(SECRET + "\n")
        scheduler.stdin.flush()
        read_until(scheduler, r"^discoro: scheduler ready at 127\.0\.0\.1:\d+$", lines)
        scheduler.stdin.close()
        read_until(scheduler, r"^discoro: end of stdin: stopping$", lines)
        assert scheduler.wait(30) == 0
    finally:
        if scheduler.poll() is None:
            scheduler.kill()
            scheduler.wait(10)
        assert scheduler.stdout is not None
        scheduler.stdout.close()


def test_ssh_server_address() -> None:
    assert ssh_server_address({"SSH_CONNECTION": "10.0.0.9 51234 10.0.0.1 22"}) == "10.0.0.1"
    assert ssh_server_address({}) is None
    assert ssh_server_address({"SSH_CONNECTION": "::1 5 ::1 22"}) is None  # IPv6: not ours
    assert ssh_server_address({"SSH_CONNECTION": "garbage"}) is None


def test_session_output_drops_everything_after_a_failed_write() -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    good = io.StringIO()
    output = SessionOutput(good)
    print("one", file=output)
    assert good.getvalue() == "one\n" and not output.lost
    output = SessionOutput(Broken())
    print("two", file=output)  # no exception: the session is gone
    output.flush()
    assert output.lost


def test_remote_commands_quote_every_word_and_carry_no_secret() -> None:
    node = ssh_commands.node_command(
        "/opt/my env/bin/python", "10.0.0.1:4000", ssh_commands.split_options("-c 2 -n 'a b'", "x")
    )
    assert node == (
        "exec '/opt/my env/bin/python' -m discoro.cli.node --ssh-session "
        "--peer 10.0.0.1:4000 -c 2 -n 'a b'"
    )
    scheduler = ssh_commands.scheduler_command("python3", ["--zombie_period", "0"])
    assert scheduler == (
        "exec python3 -m discoro.cli.scheduler scheduler --ssh-session --zombie_period 0"
    )
    assert ssh_commands.secret_line(SECRET) == SECRET + "\n"
    assert ssh_commands.secret_line(None) == "\n"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("-c 'unclosed", "No closing quotation"),
        ("-s hunter2", "-s is set by the launcher"),
        (["--secret=hunter2"], "--secret is set by the launcher"),
        ("--ssh-session", "--ssh-session is set by the launcher"),
    ],
)
def test_bad_options_are_refused_before_anything_starts(
    options: str | list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ssh_commands.split_options(options, "--node-options")


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        ([], "no hosts"),
        (["a", "a"], "given twice"),
        (["-oProxyCommand=x"], "bad host name"),
        (["me@-oProxyCommand=x"], "bad host name"),
        (["me@"], "bad host name"),
    ],
)
def test_bad_host_lists_are_refused(hosts: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LaunchSpec(hosts=hosts).check()
    with pytest.raises(ValueError, match="line break"):
        LaunchSpec(hosts=["a"], secret="two\nlines").check()


@pytest.mark.timeout(60)
def test_a_host_name_that_does_not_resolve_is_named() -> None:
    import asyncio

    from discoro.cluster.ssh_launch import Launcher, LaunchError

    launcher = Launcher(LaunchSpec(hosts=["me@no-such-host.invalid"], connect_timeout=20))
    with pytest.raises(LaunchError) as caught:
        asyncio.run(launcher.start())
    assert caught.value.host == "me@no-such-host.invalid"
    assert str(caught.value).startswith("me@no-such-host.invalid: cannot connect to SSH port 22: ")
    assert "Unknown error" not in str(caught.value)
    assert not launcher.programs and not launcher.connections


@pytest.mark.timeout(60)
def test_ssh_cluster_that_cannot_start_raises_naming_the_host() -> None:
    import threading

    import discoro

    before = threading.active_count()
    with pytest.raises(
        discoro.SSHClusterError, match=r"^nowhere\.invalid: cannot connect"
    ) as caught:
        discoro.SSHCluster("nowhere.invalid", secret=SECRET, connect_timeout=20)
    assert caught.value.host == "nowhere.invalid"
    assert threading.active_count() == before  # its loop thread ended
    with pytest.raises(ValueError, match="node_options"):
        discoro.SSHCluster(["a"], node_options="-c 'unclosed")


def test_locations_from_host_port_strings() -> None:
    assert as_location("127.0.0.1:4567") == Location("127.0.0.1", 4567)
    location = Location("127.0.0.1", 1)
    assert as_location(location) is location
    for bad in ("127.0.0.1", "127.0.0.1:x", ":80", "127.0.0.1:70000"):
        with pytest.raises(ValueError, match="not a location"):
            as_location(bad)
    with pytest.raises(TypeError):
        as_location(4567)  # type: ignore[arg-type]
