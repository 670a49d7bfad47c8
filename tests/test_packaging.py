"""The package as published: license, typing marker, metadata, and no dependency that only
the demo needs."""

from __future__ import annotations

import ast
import tomllib
from importlib import metadata
from pathlib import Path

import discoro

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "discoro"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_license_and_typing_marker() -> None:
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    assert PROJECT["license"] == {"text": "MIT"}
    assert "License :: OSI Approved :: MIT License" in PROJECT["classifiers"]
    assert (SRC / "py.typed").is_file()
    assert "Typing :: Typed" in PROJECT["classifiers"]


def test_tqdm_is_only_the_demos() -> None:
    assert not any(dep.startswith("tqdm") for dep in PROJECT["dependencies"])
    assert any(dep.startswith("tqdm") for dep in PROJECT["optional-dependencies"]["demo"])
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            assert not any(name.split(".")[0] == "tqdm" for name in names), path


def test_version_comes_from_the_package_metadata() -> None:
    assert discoro.__version__ == metadata.version("discoro") == PROJECT["version"]
