"""Operator mistakes with the real programs (the installed ``discoronode`` and ``discoro``
scripts): one line on stderr naming the option and the address, port or file, a non-zero
exit status, no traceback, nothing left running. Also the programs' help and version."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from discoro.cli import checks
from discoro.cluster import procdir
from discoro.cluster.node import Node, NodeConfig
from procs import SRC, free_port

BIN = Path(sys.executable).parent
NODE = str(BIN / "discoronode")
SCHEDULER = str(BIN / "discoro")


def run(program: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [program, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def one_error_line(result: subprocess.CompletedProcess[str], status: int = 2) -> str:
    """The single line the program printed (on stderr, nothing on stdout) and exited with
    ``status``."""
    lines = result.stderr.splitlines()
    assert result.returncode == status, (result.returncode, result.stdout, result.stderr)
    assert len(lines) == 1 and result.stdout == "", (result.stdout, result.stderr)
    return lines[0]


@pytest.fixture
def node_args(tmp_path: Path, udp_port: int) -> list[str]:
    """Arguments of a node that would start (on loopback, in a private directory)."""
    return ["-c", "1", "--force", "-u", str(udp_port), "--dest_path", str(tmp_path)]


@pytest.fixture
def scheduler_args(tmp_path: Path, udp_port: int) -> list[str]:
    return ["-u", str(udp_port), "--dest_path", str(tmp_path)]


@pytest.fixture
def busy_tcp_port() -> object:
    """A port a listening socket on 127.0.0.1 holds for the test."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


@pytest.fixture
def busy_udp_port() -> object:
    """A UDP port held by a socket that does not share it."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("", 0))
        yield sock.getsockname()[1]


@pytest.mark.parametrize("program", [NODE, SCHEDULER])
def test_tcp_port_in_use(
    program: str, busy_tcp_port: int, node_args: list[str], scheduler_args: list[str]
) -> None:
    args = node_args if program == NODE else scheduler_args
    result = run(program, *args, "-i", "127.0.0.1", "--tcp_port", str(busy_tcp_port))
    line = one_error_line(result)
    assert line.startswith(f"{Path(program).name}: error: --tcp_port:")
    assert f"127.0.0.1:{busy_tcp_port}" in line and "in use" in line


def test_second_process_tcp_port_in_use(busy_tcp_port: int, node_args: list[str]) -> None:
    """Process i of a node listens on PORT+i-1: each of those ports is checked."""
    first = busy_tcp_port - 1
    result = run(NODE, *node_args[2:], "-c", "2", "-i", "127.0.0.1", "--tcp_port", str(first))
    assert f"127.0.0.1:{busy_tcp_port} " in one_error_line(result)


def test_web_port_in_use(busy_tcp_port: int, scheduler_args: list[str]) -> None:
    result = run(SCHEDULER, *scheduler_args, "-i", "127.0.0.1", "--http", str(busy_tcp_port))
    line = one_error_line(result)
    assert line.startswith("discoro: error: --http:") and f":{busy_tcp_port} " in line


@pytest.mark.parametrize("program", [NODE, SCHEDULER])
@pytest.mark.parametrize(
    ("address", "reason"),
    [("127.0.0.l", "not a known address"), ("192.0.2.1", "not an address of this machine")],
)
def test_bad_address(
    program: str, address: str, reason: str, node_args: list[str], scheduler_args: list[str]
) -> None:
    args = node_args if program == NODE else scheduler_args
    line = one_error_line(run(program, *args, "-i", address))
    assert line.startswith(f"{Path(program).name}: error: -i/--ip_addr {address}: {reason}")


@pytest.mark.parametrize("program", [NODE, SCHEDULER])
def test_udp_port_in_use_is_an_error(
    program: str, busy_udp_port: int, node_args: list[str], scheduler_args: list[str]
) -> None:
    args = (node_args if program == NODE else scheduler_args)[:]
    args[args.index("-u") + 1] = str(busy_udp_port)
    line = one_error_line(run(program, *args, "-i", "127.0.0.1"))
    assert f"UDP port {busy_udp_port} is not available for discovery" in line


@pytest.mark.parametrize("program", [NODE, SCHEDULER])
def test_tls_files_that_cannot_be_used(
    program: str, tmp_path: Path, node_args: list[str], scheduler_args: list[str]
) -> None:
    args = [*(node_args if program == NODE else scheduler_args), "-i", "127.0.0.1"]
    missing = tmp_path / "missing.pem"
    line = one_error_line(run(program, *args, "--certfile", str(missing)))
    assert line.endswith(f"--certfile {missing}: cannot read it (No such file or directory)")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    line = one_error_line(run(program, *args, "--certfile", str(garbage)))
    assert f"--certfile {garbage}: TLS cannot use them" in line
    line = one_error_line(run(program, *args, "--cafile", str(garbage)))
    assert line.endswith("--cafile needs --certfile (TLS is on only with a certificate)")


def test_status_with_a_bad_address() -> None:
    line = one_error_line(run(SCHEDULER, "status", "-i", "127.0.0.l", "--timeout", "1"))
    assert line.startswith("discoro status: error: -i/--ip_addr 127.0.0.l: not a known address")


def test_a_server_that_cannot_start_stops_the_node_at_once(
    tmp_path: Path, udp_port: int, cluster_secret: str
) -> None:
    """A mistake only the server process meets (here a certificate that is not there,
    bypassing the node program's checks): its one line, then the node stops, without the
    restarts that cannot help and without a traceback."""
    program = (
        "import sys\n"
        "from discoro.cluster.node import Node, NodeConfig\n"
        f"options = dict(node='127.0.0.1', udp_port={udp_port}, dest_path={str(tmp_path)!r},"
        f" certfile={str(tmp_path / 'absent.pem')!r})\n"
        "sys.exit(Node(NodeConfig(count=1, prefix='t', options=options)).run())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=40,
        stdin=subprocess.DEVNULL,
        env={"PYTHONPATH": SRC, "DISCORO_SECRET": cluster_secret},
        check=False,
    )
    assert result.returncode == 1, result
    lines = result.stdout.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("proc-1: discoro_proc 1: cannot start: ")
    assert "absent.pem" in lines[0]
    assert lines[1] == "discoronode: process 1 cannot start; stopping"
    assert "Traceback" not in result.stderr + result.stdout


def test_node_passes_its_log_level_to_the_server_processes() -> None:
    node = Node(NodeConfig(count=1, prefix="t", options={}, log_level="DEBUG"))
    command = node._command(1)
    assert command[command.index("--log-level") + 1] == "DEBUG"
    assert "--log-level" not in Node(NodeConfig(count=1, prefix="t", options={}))._command(1)


# -- help and version ----------------------------------------------------------------------


def test_discoro_help_lists_every_command_and_no_node_only_text() -> None:
    result = run(SCHEDULER, "--help")
    assert result.returncode == 0
    text = result.stdout
    for command in ("scheduler", "node", "status"):
        assert f"\n  {command} " in text, text
    for option in ("--certfile", "--keyfile", "--cafile", "--log-level", "--version"):
        assert option in text
    assert "PORT+i-1" not in text and "server processes (default" not in text


def test_discoronode_help_has_the_tls_and_logging_options() -> None:
    result = run(NODE, "--help")
    assert result.returncode == 0
    for option in ("--certfile", "--keyfile", "--cafile", "--log-level", "--version", "PORT+i-1"):
        assert option in result.stdout


def test_version_of_both_programs() -> None:
    from importlib import metadata

    version = metadata.version("discoro")
    for program, name in ((NODE, "discoronode"), (SCHEDULER, "discoro")):
        result = run(program, "--version")
        assert (result.returncode, result.stdout) == (0, f"{name} {version}\n")
    import discoro

    assert discoro.__version__ == version


def test_log_level_is_checked() -> None:
    result = run(SCHEDULER, "--log-level", "chatty")
    assert result.returncode == 2 and "--log-level" in result.stderr


# -- the default directory -------------------------------------------------------------------


def test_default_dest_path_is_private_to_the_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    root = procdir.user_root()
    assert root == tmp_path / f"discoro-{__import__('os').getuid()}"
    assert root.is_dir() and root.stat().st_mode & 0o777 == 0o700
    assert procdir.user_root() == root  # again: it is ours
    root.chmod(0o777)
    with pytest.raises(ValueError, match="others can write in it"):
        procdir.user_root()
    root.rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    root.symlink_to(elsewhere)
    with pytest.raises(ValueError, match="not a directory"):
        procdir.user_root()


def test_checks_accept_what_works(tmp_path: Path) -> None:
    assert checks.local_address("127.0.0.1", "-i") == "127.0.0.1"
    assert checks.local_address(None, "-i") == ""
    checks.tcp_port_free("127.0.0.1", free_port(), "--tcp_port")
    checks.udp_port_free(free_port(socket.SOCK_DGRAM))
    checks.tls_files(None, None, None)
    checks.writable_directory(str(tmp_path / "new"), "--dest_path")


@pytest.mark.parametrize("option", ["--tcp_port", "--http"])
def test_a_port_taken_after_the_checks_is_still_one_line(
    option: str, busy_tcp_port: int, scheduler_args: list[str], cluster_secret: str
) -> None:
    """The race the checks cannot see (the port taken between check and start), played by
    skipping the check: the scheduler's start fails with one line, exit status 1."""
    program = (
        "import sys\n"
        "from discoro.cli import checks\n"
        "checks.tcp_port_free = lambda *args: None\n"
        "from discoro.cli.scheduler import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    args = [*scheduler_args, "-i", "127.0.0.1", option, str(busy_tcp_port)]
    result = subprocess.run(
        [sys.executable, "-c", program, *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        env={"PYTHONPATH": SRC, "DISCORO_SECRET": cluster_secret},
        check=False,
    )
    line = one_error_line(result, 1)
    assert line.startswith("discoro: error: cannot start the scheduler: ")
    assert f"('127.0.0.1', {busy_tcp_port})" in line and "in use" in line
