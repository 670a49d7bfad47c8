"""``discoronode --net-thread/--no-net-thread`` (issue 9; D10): whether the node's server
processes run their network on a transport thread, seen from outside the server.

A server's transport thread is named ``discoro-net`` in the OS (Linux: /proc/PID/task/TID/comm),
so the test reads the server process's thread names: the default has one, ``--no-net-thread``
none, and ``DISCORO_NET_THREAD`` (when set) overrides the option either way.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

from discoro.cli import node as node_cli
from discoro.cli.config_file import apply_config, save_config
from discoro.net.transport_thread import OS_THREAD_NAME
from procs import PeerProcess

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.timeout(60)

NODE = "import sys\nfrom discoro.cli.node import main\nsys.exit(main(sys.argv[1:]))\n"
PROC_READY = r"^discoronode: process 1 ready at 127\.0\.0\.1:\d+ \(pid (\d+)\)$"


def thread_names(pid: int) -> list[str]:
    tasks = f"/proc/{pid}/task"
    names = []
    for tid in os.listdir(tasks):
        try:
            with open(f"{tasks}/{tid}/comm", encoding="utf-8") as comm:
                names.append(comm.read().strip())
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
    return names


@pytest.mark.parametrize(
    ("option", "env", "threaded"),
    [
        ((), "", True),
        (("--no-net-thread",), "", False),
        (("--net-thread",), "0", False),  # the environment variable overrides the option
        (("--no-net-thread",), "1", True),
    ],
)
def test_the_option_decides_whether_servers_run_a_transport_thread(
    option: tuple[str, ...],
    env: str,
    threaded: bool,
    cluster_secret: str,
    udp_port: int,
    tmp_path: Path,
) -> None:
    args = ("-i", "127.0.0.1", "-u", str(udp_port), "--dest_path", str(tmp_path), "-c", "1")
    args += ("--force", "-n", "t", *option)
    with PeerProcess(NODE, *args, env={"DISCORO_NET_THREAD": env}) as node:
        pid = int(node.expect(PROC_READY, timeout=30)[1])
        names = thread_names(pid)
        assert (OS_THREAD_NAME in names) == threaded, (names, node.output)
        node.write("quit")
        assert node.wait(30) == 0, node.output


def test_the_option_is_kept_in_a_config_file(tmp_path: Path) -> None:
    parser = node_cli.build_parser()
    assert parser.parse_args([]).net_thread is True
    saved = parser.parse_args(["--no-net-thread"])
    path = str(tmp_path / "node.ini")
    save_config(parser, saved, path)
    loaded = parser.parse_args([])
    apply_config(parser, loaded, path)
    assert loaded.net_thread is False
    (tmp_path / "bad.ini").write_text("[DEFAULT]\nnet_thread = maybe\n")
    with pytest.raises(ValueError, match="net_thread"):
        apply_config(parser, parser.parse_args([]), str(tmp_path / "bad.ini"))
