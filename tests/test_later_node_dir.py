"""The node directory (later-versions D8): a computation's files are in each server's working
directory and in the parent of the working directories, reachable as ``../name`` and
importable from there; close removes what this namespace wrote, only that."""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

from discoro.cluster.namespace import Namespace
from discoro.cluster.protocol import ShippedFile

if TYPE_CHECKING:
    from pathlib import Path


def test_files_in_the_node_directory_too(tmp_path: Path) -> None:
    node_dir = tmp_path / "node"
    workdir = node_dir / "proc-1"
    (node_dir / "proc-1.pid").parent.mkdir(parents=True)
    (node_dir / "proc-1.pid").write_text("1\n")  # not the computation's: stays
    main = sys.modules["__main__"]
    namespace = Namespace(workdir, node_dir)
    files = [
        ShippedFile("later_node_mod.py", b"VALUE = 'from the node directory'\n", 0o644),
        ShippedFile("data.txt", b"payload\n", 0o600),
    ]
    try:
        namespace.install(b"", files)
        assert (workdir / "data.txt").read_bytes() == b"payload\n"
        assert (workdir / ".." / "data.txt").read_bytes() == b"payload\n"
        assert str(node_dir.resolve()) in sys.path
        module = importlib.import_module("later_node_mod")
        assert module.VALUE == "from the node directory"
        assert not list(node_dir.glob(".*.tmp"))  # written atomically, no leftovers
    finally:
        namespace.close()
    assert sys.modules["__main__"] is main
    assert "later_node_mod" not in sys.modules
    assert str(node_dir.resolve()) not in sys.path
    assert sorted(p.name for p in node_dir.iterdir()) == ["proc-1", "proc-1.pid"]
    assert list(workdir.iterdir()) == []
