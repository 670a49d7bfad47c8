"""The ``discoronode`` program, `local_cluster` and the ``discoro`` program (reference 4, 5):
real processes on 127.0.0.1, waited for by the lines they print."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from discoro.cli import node as node_cli
from discoro.cli import scheduler as scheduler_cli
from discoro.cluster.local import LocalClusterError, local_cluster
from procs import PeerProcess

pytestmark = pytest.mark.timeout(40)

NODE = "import sys\nfrom discoro.cli.node import main\nsys.exit(main(sys.argv[1:]))\n"
SCHEDULER = "import sys\nfrom discoro.cli.scheduler import main\nsys.exit(main(sys.argv[1:]))\n"
CPUS = node_cli.available_cpus()
TWO = 2 if CPUS >= 2 else 1
READY = r"^discoronode: {} processes ready at 127\.0\.0\.1$"
PROC_READY = r"^discoronode: process {} ready at 127\.0\.0\.1:\d+ \(pid (\d+)\)$"


def node_args(root: Path, udp_port: int, *extra: str) -> tuple[str, ...]:
    return ("-i", "127.0.0.1", "-u", str(udp_port), "--dest_path", str(root), "-n", "t", *extra)


def pid_files(root: Path) -> list[Path]:
    return sorted((root / "discoro").glob("*.pid"))


def test_cpus_validation(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("999999", str(-CPUS)):
        with pytest.raises(SystemExit) as exit_info:
            node_cli.main(["-c", bad, "-i", "127.0.0.1"])
        assert exit_info.value.code == 2
        assert f"-c {bad}:" in capsys.readouterr().err
    assert node_cli.process_count(0, 4) == 4
    assert node_cli.process_count(-1, 4) == 3
    assert node_cli.process_count(6, 4, force=True) == 6
    with pytest.raises(SystemExit):
        scheduler_cli.main(["--zombie_period", "5", "-i", "127.0.0.1"])
    assert "at least 100" in capsys.readouterr().err


def test_parse_peer() -> None:
    assert node_cli.parse_peer("10.0.0.2") == "10.0.0.2"
    assert node_cli.parse_peer("10.0.0.2:9000") == ["10.0.0.2", 9000]


def test_node_starts_restarts_and_stops_cleanly(
    cluster_secret: str, udp_port: int, tmp_path: Path
) -> None:
    with PeerProcess(NODE, *node_args(tmp_path, udp_port, "-c", str(TWO))) as node:
        pids = {i: int(m[1]) for i, m in enumerate(node.expect_all(
            *(PROC_READY.format(i) for i in range(1, TWO + 1)), READY.format(TWO),
            timeout=20,
        )[:-1], start=1)}  # fmt: skip
        assert [f.name for f in pid_files(tmp_path)] == [f"proc-{i}.pid" for i in pids]
        for i, pid in pids.items():
            assert int((tmp_path / "discoro" / f"proc-{i}.pid").read_text()) == pid
            assert psutil.pid_exists(pid)

        os.kill(pids[1], signal.SIGKILL)
        node.expect(rf"^discoronode: process 1 \(pid {pids[1]}\) exited with status -9; restart")
        new_pid = int(node.expect(PROC_READY.format(1), timeout=20)[1])
        assert new_pid != pids[1]
        assert int((tmp_path / "discoro" / "proc-1.pid").read_text()) == new_pid

        node.proc.send_signal(signal.SIGTERM)
        assert node.wait(20) == 0
        for pid in (new_pid, *list(pids.values())[1:]):
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"
        assert pid_files(tmp_path) == []


def test_stale_pid_file_closed_stdin_and_quit_line(
    cluster_secret: str, udp_port: int, tmp_path: Path
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (tmp_path / "discoro").mkdir()
    (tmp_path / "discoro" / "proc-1.pid").write_text(f"{gone.pid}\n")  # a dead process
    (tmp_path / "discoro" / "proc-7").mkdir()  # left over from a bigger node
    args = node_args(tmp_path, udp_port, "-c", "1", "--clean")
    with PeerProcess(NODE, *args) as node:
        node.expect(r"^discoronode: removed .*proc-7$")
        node.expect(READY.format(1), timeout=20)
        assert not (tmp_path / "discoro" / "proc-7").exists()
        node.write("quit")
        node.expect(r"^discoronode: quit: stopping$")
        assert node.wait(20) == 0
    assert pid_files(tmp_path) == []

    with PeerProcess(NODE, *node_args(tmp_path, udp_port, "-c", "1")) as node:
        node.expect(READY.format(1), timeout=20)
        assert node.proc.stdin is not None
        node.proc.stdin.close()  # end of stdin: the node keeps running, without spinning
        watched = psutil.Process(node.proc.pid)
        before = watched.cpu_times()
        time.sleep(1.0)  # measuring CPU use over a period: the one fixed sleep here
        after = watched.cpu_times()
        assert (after.user + after.system) - (before.user + before.system) < 0.2
        assert node.proc.poll() is None
        node.proc.send_signal(signal.SIGINT)
        assert node.wait(20) == 0
    assert pid_files(tmp_path) == []


def test_local_cluster(cluster_secret: str, udp_port: int) -> None:
    with local_cluster(procs=TWO, udp_port=udp_port, secret=cluster_secret) as cluster:
        assert cluster.node_addr == "127.0.0.1"
        assert sorted(cluster.procs) == list(range(1, TWO + 1))
        assert all(loc.addr == "127.0.0.1" for loc in cluster.procs.values())
        root = Path(cluster.dest_path)
        assert len(pid_files(root)) == TWO
    assert cluster.stop() == 0 and not root.exists()
    with pytest.raises(LocalClusterError, match="discoronode exited"):
        local_cluster(procs=1, udp_port=udp_port, args=("--bogus-option",))


def test_shared_scheduler_program(cluster_secret: str, udp_port: int, tmp_path: Path) -> None:
    args = ("-i", "127.0.0.1", "-u", str(udp_port), "--dest_path", str(tmp_path), "--clean")
    with PeerProcess(SCHEDULER, "scheduler", *args, "--zombie_period", "0") as program:
        program.expect(r"^discoro: scheduler ready at 127\.0\.0\.1:\d+$", timeout=20)
        assert (tmp_path / "discoro" / "scheduler").is_dir()
        program.proc.send_signal(signal.SIGTERM)
        program.expect(r"^discoro: SIGTERM: stopping$")
        assert program.wait(20) == 0
