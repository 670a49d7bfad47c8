"""The network layer uses only the core's public door (issue 9; `discoro.core.door`).

An AST scan: no module of ``discoro/net/`` touches a private name of the core (an attribute,
slot or method whose name starts with one underscore, defined by a class of
``discoro/core/``) on anything but ``self``/``cls``, spells one in ``getattr``/``setattr``/
``hasattr``, or imports a private name from a core module. Net's own classes may use their
own private attributes on themselves.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "discoro"


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _modules(folder: str) -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text())) for path in sorted((SRC / folder).glob("*.py"))]


def core_private_names() -> set[str]:
    """Every private attribute, slot and method name the core's classes define."""
    names: set[str] = set()
    for _, tree in _modules("core"):
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        names.add(item.name)
                    elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                        names.add(item.target.id)
                    elif isinstance(item, ast.Assign):
                        for target in item.targets:
                            if isinstance(target, ast.Name) and target.id == "__slots__":
                                for slot in ast.walk(item.value):
                                    if isinstance(slot, ast.Constant) and isinstance(
                                        slot.value, str
                                    ):
                                        names.add(slot.value)
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    if (
                        isinstance(target, ast.Attribute)
                        and isinstance(target.value, ast.Name)
                        and target.value.id == "self"
                    ):
                        names.add(target.attr)
    return {name for name in names if _is_private(name)}


def own_names(tree: ast.Module) -> dict[str, set[str]]:
    """class name -> the methods a class of this module defines (``RCI._handle`` is net's)."""
    return {
        node.name: {
            item.name
            for item in node.body
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
        }
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }


def violations(tree: ast.Module, private: set[str]) -> list[str]:
    found = []
    own = own_names(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in private:
            owner = node.value
            if isinstance(owner, ast.Name) and (
                owner.id in ("self", "cls") or node.attr in own.get(owner.id, ())
            ):
                continue
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in private
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("discoro.core"):
            for alias in node.names:
                if _is_private(alias.name):
                    found.append(f"line {node.lineno}: imports {node.module}.{alias.name}")
    return found


def test_the_scan_knows_the_core_private_names() -> None:
    private = core_private_names()
    assert {"_coros", "_put", "_hold", "_done", "_add_monitor", "_channels", "_id"} <= private
    sample = ast.parse("kernel._coros[1]._put(x)\nself._put(x)\ngetattr(k, '_channels', {})")
    assert len(violations(sample, private)) == 3  # the scan can fail: two on line 1, one on 3


@pytest.mark.parametrize("path", sorted((SRC / "net").glob("*.py")), ids=lambda path: path.name)
def test_net_touches_no_private_name_of_the_core(path: Path) -> None:
    found = violations(ast.parse(path.read_text()), core_private_names())
    assert not found, f"{path.name} reaches into the core (use its door):\n" + "\n".join(found)
