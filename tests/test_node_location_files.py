"""``send_file`` / ``del_file`` to a `NodeLocation` (later-versions D8) between real
processes on loopback: the file goes to the receiver's node directory, not its
``dest_path``; the same path rules hold there; a receiver without a node directory refuses;
what was received is listed for removal (`take_node_files`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from discoro import AsynCoro, Location
from discoro.net.location import NodeLocation
from procs import PeerProcess

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

RECEIVER = """
import sys
import discoro
from discoro.cluster.procdir import node_reserved

kernel = discoro.AsynCoro(node="127.0.0.1", dest_path=sys.argv[1], discover=False)
network = kernel.network()
if sys.argv[2] != "-":
    network.set_node_path(sys.argv[2], node_reserved)
print("LOCATION", kernel.location.port, flush=True)
for line in sys.stdin:
    if line.strip() == "taken":
        taken = network.take_node_files()
        print("TAKEN", sorted(str(path) for path in taken), flush=True)
"""


@pytest.fixture
def receiver_with(
    cluster_secret: str,
) -> Iterator[Any]:
    started: list[PeerProcess] = []

    def start(dest: Path, node_dir: Path | None) -> tuple[PeerProcess, Location]:
        proc = PeerProcess(RECEIVER, str(dest), str(node_dir) if node_dir else "-")
        started.append(proc)
        port = int(proc.expect(r"^LOCATION (\d+)", timeout=20).group(1))
        return proc, Location("127.0.0.1", port)

    yield start
    for proc in started:
        proc.stop()
        for pipe in (proc.proc.stdin, proc.proc.stdout):
            if pipe is not None:
                pipe.close()


def run(kernel: AsynCoro, awaitable: Any) -> Any:
    return kernel.run_sync(awaitable, timeout=30)


def tree(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.timeout(60)
def test_files_for_the_node_go_to_the_node_directory(
    net_kernel: AsynCoro, receiver_with: Any, tmp_path: Path
) -> None:
    node_dir = (tmp_path / "node").resolve()
    dest = node_dir / "proc-1"
    dest.mkdir(parents=True)
    proc, server = receiver_with(dest, node_dir)
    node = NodeLocation.of(server)
    source = tmp_path / "table.dat"
    source.write_bytes(b"rows\n")
    assert run(net_kernel, net_kernel.send_file(node, str(source))) == 0
    assert run(net_kernel, net_kernel.send_file(node, str(source), dir="sub")) == 0
    assert (node_dir / "table.dat").read_bytes() == b"rows\n"
    assert (dest / ".." / "sub" / "table.dat").read_bytes() == b"rows\n"
    assert tree(dest) == []  # not in the server's own directory
    assert run(net_kernel, net_kernel.send_file(server, str(source))) == 0
    assert (dest / "table.dat").read_bytes() == b"rows\n"  # a server Location: its directory
    # the same path rules under the node directory
    outside = tmp_path / "outside"
    outside.mkdir()
    (node_dir / "link").symlink_to(outside)
    for bad in ("../escape", "/abs", "link"):
        assert run(net_kernel, net_kernel.send_file(node, str(source), dir=bad)) == -1
    assert tree(outside) == [] and not (tmp_path / "escape").exists()
    # the node's own entries: servers' directories and PID files, the scheduler's directory
    (node_dir / "proc-1.pid").write_text("1\n")
    pid_named = tmp_path / "proc-1.pid"
    pid_named.write_text("2\n")
    for bad_source, bad_dir in ((pid_named, None), (source, "proc-1"), (source, "scheduler")):
        sent = run(net_kernel, net_kernel.send_file(node, str(bad_source), dir=bad_dir))
        assert sent == -1, (bad_source, bad_dir)
    assert run(net_kernel, net_kernel.del_file(node, "proc-1.pid")) == -1
    assert (node_dir / "proc-1.pid").read_text() == "1\n"
    assert not (node_dir / "scheduler").exists()
    proc.write("taken")
    taken = proc.expect(r"^TAKEN (.*)$", timeout=20).group(1)
    assert taken == repr(sorted([str(node_dir / "sub/table.dat"), str(node_dir / "table.dat")]))
    assert run(net_kernel, net_kernel.del_file(node, str(source), dir="sub")) == 0
    assert not (node_dir / "sub").exists()
    assert (dest / "table.dat").exists()  # del_file to the node leaves the server's copy


@pytest.mark.timeout(60)
def test_a_peer_without_a_node_directory_refuses(
    net_kernel: AsynCoro, receiver_with: Any, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    _, server = receiver_with(dest, None)
    source = tmp_path / "x.dat"
    source.write_bytes(b"x")
    assert run(net_kernel, net_kernel.send_file(NodeLocation.of(server), str(source))) == -1
    assert run(net_kernel, net_kernel.del_file(NodeLocation.of(server), str(source))) == -1
    assert tree(tmp_path / "dest") == []
