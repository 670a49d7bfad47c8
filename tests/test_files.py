"""File transfer (reference 2.10) between real processes on loopback.

One child process is the receiver (its ``dest_path`` in a temporary directory); the test
process sends through its own kernel (`net_kernel`), and forges protocol messages with the
network's ``request``/``post`` where a well-behaved sender would never go.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from discoro import AsynCoro, Coro, Location
from discoro.wire.messages import Message
from procs import PeerProcess, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

MAX_FILE_SIZE = 21 << 20

RECEIVER = """
import sys
import discoro
import discoro.net.file_receiver as receiver

kernel = discoro.AsynCoro(
    node="127.0.0.1", dest_path=sys.argv[1], max_file_size=int(sys.argv[2]), discover=False
)
kernel.network()
print("LOCATION", kernel.location.port, flush=True)
for line in sys.stdin:
    command, _, argument = line.strip().partition(" ")
    if command == "dest":
        try:
            kernel.dest_path = argument
        except ValueError as exc:
            print("DEST refused", exc, flush=True)
        else:
            print("DEST", kernel.dest_path, flush=True)
    elif command == "idle":
        receiver.IDLE_TIMEOUT = float(argument)
        print("IDLE", argument, flush=True)
"""

HALF_SENDER = """
import sys
import discoro
from discoro.wire.messages import Message

kernel = discoro.AsynCoro(node="127.0.0.1", discover=False)
net = kernel.network()
to = discoro.Location("127.0.0.1", int(sys.argv[1]))

async def half():
    begin = {"x": 7, "n": "partial.bin", "d": "half", "s": 4 << 20, "m": 0o644,
             "a": 0, "t": 0, "o": False}
    verdict = await net.request(to, "file_begin", begin, None, 5)
    net.post(to, Message("file_chunk", 0, {"x": 7}, b"x" * (1 << 20)))
    # answered after the chunk was written: messages on a link are handled in order
    await net.request(to, "del_file", {"n": "no-such-file", "d": None}, None, 5)
    return verdict.fields

print("HALF", kernel.run_sync(half()), flush=True)
sys.stdin.readline()
"""


@contextmanager
def peer_process(program: str, *args: str) -> Iterator[PeerProcess]:
    """A `PeerProcess` whose pipes are closed at the end (its ``stop`` leaves them open,
    which ``filterwarnings = error`` turns into a ResourceWarning failure)."""
    proc = PeerProcess(program, *args)
    try:
        yield proc
    finally:
        proc.stop()
        for pipe in (proc.proc.stdin, proc.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("files")


@pytest.fixture(scope="module")
def receiver(cluster_secret: str, base: Path) -> Iterator[PeerProcess]:
    dest = base / "dest"
    with peer_process(RECEIVER, str(dest), str(MAX_FILE_SIZE)) as proc:
        port = int(proc.expect(r"^LOCATION (\d+)").group(1))
        proc.location = Location("127.0.0.1", port)  # type: ignore[attr-defined]
        yield proc


@pytest.fixture
def dest(receiver: PeerProcess, base: Path) -> Iterator[Path]:
    """The receiver's dest_path, empty at the start of each test."""
    path = base / "dest"
    path.mkdir(exist_ok=True)
    yield path
    for entry in path.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


@pytest.fixture
def to(receiver: PeerProcess) -> Location:
    location: Location = receiver.location  # type: ignore[attr-defined]
    return location


def run(kernel: AsynCoro, awaitable: Any) -> Any:
    return kernel.run_sync(awaitable, timeout=30)


def send(kernel: AsynCoro, to: Location, file: Path, **kwargs: Any) -> Any:
    return run(kernel, kernel.send_file(to, str(file), **kwargs))


def forge(kernel: AsynCoro, to: Location, op: str, fields: dict[str, Any], payload: Any = None):
    reply = run(kernel, kernel.network().request(to, op, fields, payload, 5))
    assert reply is not None
    return reply.fields


def make_file(path: Path, data: bytes, mode: int = 0o644, mtime: int | None = None) -> Path:
    path.write_bytes(data)
    path.chmod(mode)
    if mtime is not None:
        os.utime(path, ns=(mtime - 5 * 10**9, mtime))
    return path


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


def test_sent_file_keeps_mode_and_times_and_identical_is_not_sent_again(
    net_kernel: AsynCoro, to: Location, dest: Path, tmp_path: Path
) -> None:
    mtime = 1_600_000_000_123_456_789
    source = make_file(tmp_path / "data.txt", b"hello files", 0o640, mtime)
    assert send(net_kernel, to, source) == 0
    received = dest / "data.txt"
    st = received.stat()  # before reading it, which may change its atime
    assert st.st_mode & 0o7777 == 0o640
    assert st.st_mtime_ns == mtime
    assert st.st_atime_ns == mtime - 5 * 10**9
    assert received.read_bytes() == b"hello files"
    assert send(net_kernel, to, source) == 1
    assert send(net_kernel, to, source, overwrite=True) == 1
    assert files_under(dest) == ["data.txt"]


def test_different_file_is_kept_unless_overwrite(
    net_kernel: AsynCoro, to: Location, dest: Path, tmp_path: Path
) -> None:
    source = make_file(tmp_path / "report.csv", b"old contents")
    assert send(net_kernel, to, source) == 0
    make_file(source, b"new, longer contents", 0o600)
    existing = send(net_kernel, to, source)
    assert isinstance(existing, os.stat_result)
    assert existing.st_size == len(b"old contents")
    assert existing.st_mtime_ns == (dest / "report.csv").stat().st_mtime_ns
    assert (dest / "report.csv").read_bytes() == b"old contents"
    assert send(net_kernel, to, source, overwrite=True) == 0
    assert (dest / "report.csv").read_bytes() == b"new, longer contents"
    assert (dest / "report.csv").stat().st_mode & 0o777 == 0o600
    assert files_under(dest) == ["report.csv"]


def test_sub_directories_and_del_file_prunes_empty_ones(
    net_kernel: AsynCoro, to: Location, dest: Path, tmp_path: Path
) -> None:
    source = make_file(tmp_path / "mod.py", b"x = 1\n")
    assert send(net_kernel, to, source, dir="a/b/c") == 0
    assert send(net_kernel, to, source, dir="a") == 0
    assert (dest / "a/b/c/mod.py").read_bytes() == b"x = 1\n"
    assert run(net_kernel, net_kernel.del_file(to, str(source), dir="a/b/c")) == 0
    assert files_under(dest) == ["a", "a/mod.py"]
    assert run(net_kernel, net_kernel.del_file(to, str(source), dir="a")) == 0
    assert files_under(dest) == []
    assert dest.is_dir()
    assert run(net_kernel, net_kernel.del_file(to, str(source), dir="a")) == -1
    assert run(net_kernel, net_kernel.del_file(to, str(source), dir="/a")) == -1


def test_seed_style_generator_coroutine_yields_send_file_and_del_file(
    net_kernel: AsynCoro, to: Location, dest: Path, tmp_path: Path
) -> None:
    source = make_file(tmp_path / "seed.txt", b"seed")

    def client(coro: Any = None) -> Any:
        kernel = AsynCoro.instance()
        sent = yield kernel.send_file(to, str(source), dir="seed", timeout=5)
        again = yield kernel.send_file(to, str(source), dir="seed", timeout=5)
        there = (dest / "seed" / "seed.txt").read_bytes()
        deleted = yield kernel.del_file(to, str(source), dir="seed", timeout=5)
        return sent, again, there, deleted

    assert Coro(client).value(timeout=30) == (0, 1, b"seed", 0)
    assert files_under(dest) == []


def test_bad_arguments_give_minus_one(
    net_kernel: AsynCoro, to: Location, dest: Path, tmp_path: Path
) -> None:
    source = make_file(tmp_path / "ok.txt", b"ok")
    assert send(net_kernel, to, tmp_path / "missing.txt") == -1
    assert send(net_kernel, to, tmp_path) == -1
    assert send(net_kernel, to, source, dir="/absolute") == -1
    assert run(net_kernel, net_kernel.send_file("127.0.0.1", str(source))) == -1
    nobody = Location("127.0.0.1", free_port())
    assert send(net_kernel, nobody, source) == -1
    assert run(net_kernel, net_kernel.del_file(nobody, str(source))) == -1
    assert files_under(dest) == []


def test_paths_that_escape_dest_path_are_refused(
    net_kernel: AsynCoro, to: Location, dest: Path, base: Path, tmp_path: Path
) -> None:
    before = files_under(base)
    source = make_file(tmp_path / "evil.sh", b"#!/bin/sh\n")
    assert send(net_kernel, to, source, dir="../x") == -1
    assert send(net_kernel, to, source, dir="a/../../x") == -1
    outside = base / "outside"
    outside.mkdir()
    (dest / "link").symlink_to(outside)
    assert send(net_kernel, to, source, dir="link") == -1
    assert send(net_kernel, to, source, dir="link/deeper") == -1
    begin = {"x": 10_001, "s": 3, "m": 0o755, "a": 0, "t": 0, "o": True, "d": None}
    for name, dir in [("../../etc/x", None), ("a/b", None), ("..", None), ("x", "/tmp")]:
        reply = forge(net_kernel, to, "file_begin", {**begin, "n": name, "d": dir})
        assert reply["r"] == -1, (name, dir)
    trap = make_file(outside / "trap.txt", b"outside")
    (dest / "trap.txt").symlink_to(trap)
    assert isinstance(send(net_kernel, to, make_file(tmp_path / "trap.txt", b"in")), os.stat_result)
    assert send(net_kernel, to, tmp_path / "trap.txt", overwrite=True) == 0
    assert not (dest / "trap.txt").is_symlink()
    assert trap.read_bytes() == b"outside"
    victim = make_file(outside / "victim", b"keep me")
    for dir in ["../outside", "link"]:
        assert run(net_kernel, net_kernel.del_file(to, str(victim), dir=dir)) == -1
    assert victim.read_bytes() == b"keep me"
    expected = [*before, "outside", "outside/trap.txt", "outside/victim", "dest/link"]
    assert files_under(base) == sorted([*expected, "dest/trap.txt"])


def test_max_file_size_is_enforced_at_begin_and_while_receiving(
    net_kernel: AsynCoro, to: Location, dest: Path, tmp_path: Path
) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as out:
        out.truncate(MAX_FILE_SIZE + 1)  # sparse: refused before any byte is read
    assert send(net_kernel, to, big, dir="big") == -1
    begin = {"x": 10_002, "n": "liar.bin", "d": "liar", "s": 10, "m": 0o644, "a": 0, "t": 0}
    assert forge(net_kernel, to, "file_begin", begin)["r"] == 0
    assert [p.suffix for p in (dest / "liar").iterdir()] == [".part"]
    net = net_kernel.network()
    net_kernel.call(net.post, to, Message("file_chunk", 0, {"x": 10_002}, b"y" * 11))
    end = forge(net_kernel, to, "file_end", {"x": 10_002, "s": 11})
    assert end["r"] == -1
    assert "more data" in end["e"]
    assert files_under(dest) == []


def test_data_for_an_unknown_transfer_is_refused(
    net_kernel: AsynCoro, to: Location, dest: Path
) -> None:
    net = net_kernel.network()
    net_kernel.call(net.post, to, Message("file_chunk", 0, {"x": 10_003}, b"z" * 100))
    end = forge(net_kernel, to, "file_end", {"x": 10_003, "s": 100})
    assert end == {"r": -1, "e": "data for an unknown transfer"}
    assert files_under(dest) == []


def test_large_and_concurrent_files_arrive_intact(
    net_kernel: AsynCoro, to: Location, dest: Path, tmp_path: Path
) -> None:
    big = make_file(tmp_path / "big.bin", os.urandom(20_000_000))
    assert send(net_kernel, to, big) == 0
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    assert hashlib.sha256((dest / "big.bin").read_bytes()).hexdigest() == digest
    sources = [make_file(tmp_path / f"c{i}.bin", os.urandom(3_000_000 + i)) for i in range(3)]
    empty = make_file(tmp_path / "empty", b"")

    async def all_at_once() -> list[Any]:
        sends = [net_kernel.send_file(to, str(p), dir="many") for p in [*sources, empty]]
        return list(await asyncio.gather(*sends))

    assert run(net_kernel, all_at_once()) == [0, 0, 0, 0]
    for path in [*sources, empty]:
        assert (dest / "many" / path.name).read_bytes() == path.read_bytes()
    expected = ["c0.bin", "c1.bin", "c2.bin", "empty"]
    assert sorted(p.name for p in (dest / "many").iterdir()) == expected


def test_killed_sender_leaves_no_partial_file(
    receiver: PeerProcess, to: Location, dest: Path
) -> None:
    with peer_process(HALF_SENDER, str(to.port)) as sender:
        sender.expect(r"^HALF \{'r': 0\}")
        assert [p.suffix for p in (dest / "half").iterdir()] == [".part"]
        sender.kill()
    receiver.expect(r"dropped incoming file .*partial\.bin.*connection to the sender was lost")
    assert files_under(dest) == []


def test_idle_transfer_is_dropped(
    net_kernel: AsynCoro, receiver: PeerProcess, to: Location, dest: Path
) -> None:
    receiver.write("idle 0.5")
    receiver.expect(r"^IDLE 0.5")
    try:
        begin = {"x": 10_004, "n": "idle.bin", "d": "idle", "s": 5, "m": 0o644, "a": 0, "t": 0}
        assert forge(net_kernel, to, "file_begin", begin)["r"] == 0
        receiver.expect(r"dropped incoming file .*idle\.bin.*no data for")
        assert files_under(dest) == []
    finally:
        receiver.write("idle 30")
        receiver.expect(r"^IDLE 30")


def test_dest_path_setter_reroots_under_the_original_root(
    receiver: PeerProcess, dest: Path, base: Path
) -> None:
    root = str(dest.resolve())
    try:
        for wanted, expected in [
            (f"{root}/inside", f"{root}/inside"),
            ("relative/dir", f"{root}/relative/dir"),
            (f"{base.resolve()}/elsewhere", f"{root}{base.resolve()}/elsewhere"),
        ]:
            receiver.write(f"dest {wanted}")
            assert receiver.expect(r"^DEST ").string == f"DEST {expected}"
            assert Path(expected).is_dir()
        receiver.write("dest ../../up")
        assert receiver.expect(r"^DEST ").string.startswith("DEST refused")
    finally:
        receiver.write(f"dest {root}")
        assert receiver.expect(r"^DEST ").string == f"DEST {root}"


def test_default_dest_path_is_private_to_the_user(net_kernel: AsynCoro) -> None:
    # not the /tmp/discoro every user of the machine shared
    from discoro.core.userdir import user_root_text

    root = net_kernel.network().dest_root
    assert root == Path(user_root_text()).resolve()
    assert root.stat().st_mode & 0o077 == 0
