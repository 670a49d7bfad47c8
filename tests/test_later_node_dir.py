"""The node directory (later-versions D8): a computation's files are in each server's working
directory and in the parent of the working directories, reachable as ``../name`` and
importable from there; close removes what this namespace wrote, only that."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING

import pytest

from discoro.cluster.namespace import Namespace, ShippingError
from discoro.cluster.protocol import ShippedFile
from discoro.cluster.shipping import package

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


def test_relative_paths_are_kept_in_the_node_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client_dir = tmp_path / "client"
    (client_dir / "sub").mkdir(parents=True)
    (client_dir / "sub" / "table.csv").write_text("1,2\n")
    outside = tmp_path / "elsewhere.txt"
    outside.write_text("x\n")
    monkeypatch.chdir(client_dir)
    _, _, files = package([os.path.join("sub", "table.csv"), str(outside)])
    assert [(f.name, f.relpath) for f in files] == [
        ("table.csv", "sub/table.csv"),
        ("elsewhere.txt", ""),
    ]
    node_dir = tmp_path / "node"
    workdir = node_dir / "proc-1"
    namespace = Namespace(workdir, node_dir)
    try:
        namespace.install(b"", files)
        assert (workdir / "table.csv").read_text() == "1,2\n"  # by base name (seed)
        assert (workdir / ".." / "sub" / "table.csv").read_text() == "1,2\n"
        assert (node_dir / "elsewhere.txt").read_text() == "x\n"
    finally:
        namespace.close()
    assert sorted(p.name for p in node_dir.iterdir()) == ["proc-1"]  # sub/ removed too


@pytest.mark.parametrize("relpath", ["../escape.txt", "/abs.txt", "a/../../b", "a//b"])
def test_a_path_leaving_the_node_directory_is_refused(tmp_path: Path, relpath: str) -> None:
    namespace = Namespace(tmp_path / "node" / "proc-1", tmp_path / "node")
    try:
        with pytest.raises(ShippingError, match="not a plain relative path"):
            namespace.install(b"", [ShippedFile("escape.txt", b"", 0o644, relpath)])
    finally:
        namespace.close()
    assert not (tmp_path / "escape.txt").exists()
