"""The ``discoronode`` service options of later versions (section 5, D11), end to end: a real
node program and real client programs on 127.0.0.1, waited for by the lines they print."""

from __future__ import annotations

import datetime
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from cluster_programs import run_client
from discoro.net.discovery import ANNOUNCE_DELAYS
from procs import PeerProcess, free_port
from test_partition_announce import Counter

pytestmark = pytest.mark.timeout(60)

NODE = "import sys\nfrom discoro.cli.node import main\nsys.exit(main(sys.argv[1:]))\n"
READY = r"^discoronode: {} processes ready at 127\.0\.0\.1$"
PROC_READY = r"^discoronode: process {} ready at 127\.0\.0\.1:(\d+) \(pid (\d+)\)$"


def node_args(root: Path, udp_port: int, *extra: str) -> tuple[str, ...]:
    return ("-i", "127.0.0.1", "-u", str(udp_port), "--dest_path", str(root), "-n", "t", *extra)


def start_node(root: Path, udp_port: int, *extra: str) -> PeerProcess:
    return PeerProcess(NODE, *node_args(root, udp_port, "-c", "1", "--force", *extra))


ONE_JOB = """
def job(n, coro=None):
    yield coro.sleep(0)
    return n * 2


def client(coro=None):
    comp = yield from start([job], coro, nprocs=1)
    rc = yield comp.run(job, 21)
    out("RUN", rc is not None)
    yield comp.close()
    out("CLOSED")
    return "one"
"""


def test_serve_one_exits_after_one_computation(
    cluster_secret: str, udp_port: int, tmp_path: Path
) -> None:
    with start_node(tmp_path, udp_port, "--serve", "1") as node:
        node.expect(READY.format(1), timeout=20)
        with run_client(ONE_JOB, udp_port, nprocs=1) as client:
            client.expect(r"^RUN True$", timeout=30)
            client.expect(r"^DONE one$", timeout=30)
        node.expect(r"^discoronode: served 1 computation\(s\): stopping$", timeout=20)
        assert node.wait(20) == 0
    assert not list((tmp_path / "discoro").glob("*.pid"))


def hhmmss(seconds_from_now: float) -> str:
    return (datetime.datetime.now() + datetime.timedelta(seconds=seconds_from_now)).strftime(
        "%H:%M:%S"
    )


LONG_JOB = """
def job(coro=None):
    yield coro.sleep(120)
    return "slept"


def client(coro=None):
    comp = yield from start([job], coro, nprocs=1)
    rc = yield comp.run(job)
    out("RUN", rc is not None)
    yield coro.sleep(60)  # the monitor line tells the test the job was ended
    return "long"
"""


def test_service_window_starts_stops_and_ends(
    cluster_secret: str, udp_port: int, tmp_path: Path
) -> None:
    # start in 8 s (a loaded machine may take seconds to start the node); stop taking work
    # 12 s later (time for the client to start and run its job); terminate 4 s after that
    start, stop, end = hhmmss(8), hhmmss(20), hhmmss(24)
    window = ("--service_start", start, "--service_stop", stop, "--service_end", end)
    with start_node(tmp_path, udp_port, *window) as node:
        node.expect(r"^discoronode: service window: from ", timeout=10)
        node.expect(r"^discoronode: outside the service window: waiting for its start$")
        assert not list((tmp_path / "discoro").glob("*.pid"))  # no server process yet
        node.expect(r"^discoronode: service window starts", timeout=15)
        node.expect(READY.format(1), timeout=20)
        with run_client(LONG_JOB, udp_port, nprocs=1) as client:
            client.expect(r"^RUN True$", timeout=30)
            node.expect(r"^discoronode: service window stops", timeout=20)
            node.write("status")  # quitting, its job still runs
            node.expect(r"^discoronode: process 1: t-1 at .*: 1 coroutine\(s\) running")
            node.expect(r"^discoronode: service window ends", timeout=20)
            # its job was ended (the two lines come in either order)
            client.expect_all(r"^STATUS ProcClosed ", r"^MONITOR job/", timeout=20)
            assert not any("slept" in line for line in client.output)
            node.expect(r"^discoronode: process 1 stopped \(service window\)$", timeout=20)
        node.write("status")
        node.expect(r"^discoronode: process 1: not running \(outside the service window\)$")
        node.proc.send_signal(signal.SIGTERM)
        assert node.wait(20) == 0


def test_daemon_reads_no_stdin_keeps_serving_and_stops_on_sigterm(
    cluster_secret: str, udp_port: int, tmp_path: Path
) -> None:
    with start_node(tmp_path, udp_port, "--daemon") as node:
        node.expect(READY.format(1), timeout=20)
        node.write("quit")  # not read: a daemon takes no commands
        assert node.proc.stdin is not None
        node.proc.stdin.close()
        with run_client(ONE_JOB, udp_port, nprocs=1) as client:
            client.expect(r"^RUN True$", timeout=30)
            client.expect(r"^DONE one$", timeout=30)
        assert node.proc.poll() is None
        node.proc.send_signal(signal.SIGTERM)
        node.expect(r"^discoronode: SIGTERM: stopping$")
        assert node.wait(20) == 0
    assert "quit: stopping" not in "\n".join(node.output)


@pytest.mark.parametrize("signame", ["SIGHUP", "SIGQUIT"])
def test_other_signals_act_as_quit(
    cluster_secret: str, udp_port: int, tmp_path: Path, signame: str
) -> None:
    with start_node(tmp_path, udp_port, "--daemon") as node:
        node.expect(READY.format(1), timeout=20)
        node.proc.send_signal(getattr(signal, signame))
        node.expect(rf"^discoronode: {signame}: stopping$")
        assert node.wait(20) == 0


def test_tcp_ports_are_honoured(cluster_secret: str, udp_port: int, tmp_path: Path) -> None:
    first, second = free_port(), free_port()
    args = node_args(tmp_path, udp_port, "-c", "2", "--force", "--tcp_ports", f"{first},{second}")
    with PeerProcess(NODE, *args) as node:
        ports = node.expect_all(PROC_READY.format(1), PROC_READY.format(2), timeout=20)
        assert {int(ports[0][1]), int(ports[1][1])} == {first, second}
        assert int(ports[0][1]) == min(first, second)  # sorted: process 1 gets the lower
        node.proc.send_signal(signal.SIGTERM)
        assert node.wait(20) == 0


IDLE = """
def job(coro=None):
    yield coro.sleep(0)


def client(coro=None):
    comp = yield from start([job], coro, nprocs=1)
    rc = yield comp.run(job)
    out("RUN", rc is not None)
    yield coro.sleep(30)  # idle: the node's zombie period closes the computation
    return "idle"
"""


def test_zombie_period_closes_an_idle_computation(
    cluster_secret: str, udp_port: int, tmp_path: Path
) -> None:
    with start_node(tmp_path, udp_port, "--zombie_period", "2") as node:
        node.expect(READY.format(1), timeout=20)
        with run_client(IDLE, udp_port, nprocs=1) as client:
            client.expect(r"^RUN True$", timeout=30)
            client.expect(r"^STATUS ProcClosed ", timeout=20)
            client.expect(r"^STATUS NodeClosed 127\.0\.0\.1$", timeout=10)
        node.write("status")
        node.expect(r"^discoronode: process 1: t-1 at 127\.0\.0\.1:\d+, pid \d+: not currently")
        node.write("quit")
        assert node.wait(20) == 0


CLOSED_BY_OPERATOR = """
def job(coro=None):
    msg = yield coro.receive()
    return msg


def quick(coro=None):
    yield coro.sleep(0)


def client(coro=None):
    comp = yield from start([job, quick], coro, nprocs=1)
    rc = yield comp.run(job)
    out("RUN", rc is not None)
    assert sys.stdin.readline().strip() == "go"  # the node was told to close
    refused = yield comp.run(quick)
    out("REFUSED", not isinstance(refused, Coro))
    rc.send("finish")
    yield coro.sleep(30)  # until the test has seen the statuses
    return "closed"
"""


def test_stdin_status_close_and_terminate(
    cluster_secret: str, udp_port: int, tmp_path: Path
) -> None:
    with start_node(tmp_path, udp_port) as node:
        node.expect(READY.format(1), timeout=20)
        node.write("")  # an empty line: status
        node.expect(r"^discoronode: process 1: t-1 at 127\.0\.0\.1:\d+, pid \d+: not currently")
        with run_client(CLOSED_BY_OPERATOR, udp_port, nprocs=1) as client:
            client.expect(r"^RUN True$", timeout=30)
            node.write("status")
            node.expect(
                r"^discoronode: process 1: t-1 at .*: 1 coroutine\(s\) running for the "
                r"scheduler at 127\.0\.0\.1:\d+$"
            )
            node.write("close")
            node.expect(r"^discoronode: close: ")
            node.write("status")
            node.expect(r"^discoronode: process 1: .*running for the scheduler .*, closing$")
            client.write("go")
            client.expect(r"run of quick failed: .*: the node's operator is closing", timeout=20)
            client.expect(r"^REFUSED True$", timeout=20)
            client.expect_all(
                r"^MONITOR .* StopIteration 'finish'", r"^STATUS ProcClosed ", timeout=20
            )  # from the server and from the scheduler: in either order
        node.write("status")  # it goes on serving
        node.expect(r"^discoronode: process 1: t-1 at .*: not currently used$")
        node.write("terminate")
        node.expect(r"^discoronode: terminate: stopping$")
        assert node.wait(20) == 0


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--serve", "0"], "--serve 0"),
        (["--serve", "many"], "--serve"),
        (["--service_start", "08:00"], "--service_start needs"),
        (["--service_stop", "7:61"], "--service_stop"),
        (["--service_start", "8:00", "--service_stop", "9:00", "--service_end", "8:30"], "before"),
        (["--msg_timeout", "0"], "--msg_timeout"),
        (["--min_pulse_interval", "0.1"], "--min_pulse_interval"),
        (["--min_pulse_interval", "5", "--max_pulse_interval", "2"], "--max_pulse_interval"),
        (["--zombie_period", "-1"], "--zombie_period"),
        (["--ping_interval", "0.5"], "--ping_interval"),
        (["--tcp_ports", "9-7"], "--tcp_ports 9-7"),
        (["--tcp_ports", "70000"], "--tcp_ports 70000"),
        (["--tcp_ports", "5000", "--tcp_port", "6000"], "--tcp_ports"),
        (["--scheduler_port", "0"], "--scheduler_port 0"),
    ],
)
def test_bad_values_are_one_line(
    args: list[str], named: str, tmp_path: Path, udp_port: int
) -> None:
    import sys

    program = str(Path(sys.executable).parent / "discoronode")
    result = subprocess.run(
        [program, "-i", "127.0.0.1", "-u", str(udp_port), "--dest_path", str(tmp_path), *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and result.stdout == "", (result.stdout, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("discoronode: error: "), lines
    assert named in lines[0]
    assert not (tmp_path / "discoro").exists()  # nothing started


TOO_FAST = """
def job(coro=None):
    yield coro.sleep(0)


def client(coro=None):
    comp = Computation([job], status_coro=Coro(status_proc), pulse_interval=1)
    out("SCHEDULE", (yield comp.schedule()))
    yield coro.sleep(30)  # until the test has seen the refusal
    return "fast"
"""


def test_announcements_to_the_scheduler_port_and_the_pulse_lower_bound(
    cluster_secret: str, tmp_path: Path
) -> None:
    """``--ping_interval`` and ``--scheduler_port``: the server process announces itself to
    the schedulers' port every second (a listener there counts them) and a scheduler on that
    port finds it; ``--min_pulse_interval``: a computation that pulses faster is refused."""
    own, schedulers = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    counter = Counter(schedulers, cluster_secret)
    try:
        args = ("--ping_interval", "1", "--scheduler_port", str(schedulers))
        with start_node(tmp_path, own, *args, "--min_pulse_interval", "2") as node:
            node.expect(READY.format(1), timeout=20)
            heard = counter.wait_for(len(ANNOUNCE_DELAYS) + 4, timeout=20)
            assert set(heard) == {"t-1"}
            with run_client(TOO_FAST, schedulers, nprocs=1) as client:
                client.expect(r"^SCHEDULE 0$", timeout=30)
                client.expect(r"^STATUS ProcIgnore 127\.0\.0\.1:\d+$", timeout=30)
                assert not any("ProcInitialized" in line for line in client.output)
            node.write("quit")
            assert node.wait(20) == 0
    finally:
        counter.close()
