"""The layer rule of DESIGN.md: imports inside discoro only point down the layer list."""

from __future__ import annotations

import ast
from pathlib import Path

import discoro

SRC = Path(__file__).resolve().parent.parent / "src" / "discoro"

# layer -> the layers of ours it may import (besides itself)
ALLOWED = {
    "errors": set(),
    "core": {"errors"},
    "wire": {"errors"},
    "net": {"errors", "core", "wire"},
    "cluster": {"errors", "core", "wire", "net"},
    "cli": {"errors", "core", "wire", "net", "cluster"},
    "web": {"errors", "core", "wire", "net", "cluster"},
}
# The one upward import: a computation's namespace on a server exposes the public API to
# shipped code as ``discoro``/``asyncoro`` (reference 3.6), so it imports the facade.
FACADE_IMPORTERS = {"cluster/namespace.py"}
# The scheduler starts its status page when asked (``http_port``), importing the web layer
# lazily inside that branch so that server processes never load aiohttp.
FORBIDDEN_IN_WIRE = {"asyncio", "socket", "ssl", "selectors", "threading"}


def layer_of(path: Path) -> str:
    relative = path.relative_to(SRC)
    return relative.parts[0].removesuffix(".py")


def imported_modules(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def test_imports_point_down_the_layer_list() -> None:
    violations = []
    for path in SRC.rglob("*.py"):
        if path.parent == SRC and path.name == "__init__.py":
            continue  # the facade re-exports every layer
        layer = layer_of(path)
        for module in imported_modules(path):
            parts = module.split(".")
            if parts[0] != "discoro":
                continue
            target = parts[1] if len(parts) > 1 else ""
            if not target and str(path.relative_to(SRC)) in FACADE_IMPORTERS:
                continue
            if target != layer and target not in ALLOWED[layer]:
                violations.append(f"{path.relative_to(SRC)} imports {module}")
    assert violations == []


def test_wire_does_no_io() -> None:
    for path in (SRC / "wire").rglob("*.py"):
        bad = {m for m in imported_modules(path) if m.split(".")[0] in FORBIDDEN_IN_WIRE}
        assert not bad, f"{path.name} imports {bad}"


def test_every_module_is_in_a_known_layer() -> None:
    for path in SRC.rglob("*.py"):
        if path.parent == SRC and path.name == "__init__.py":
            continue
        assert layer_of(path) in ALLOWED, path


def test_facade_is_importable_as_asyncoro() -> None:
    import discoro as asyncoro

    assert asyncoro.Coro is discoro.Coro


SUBPACKAGES = {"cli", "cluster", "core", "errors", "net", "web", "wire"}
PUBLIC_API = {
    # asyncoro (reference 1.14; sockets and files are not part of this project)
    "AsynCoro", "AsyncDBCursor", "AsyncThreadPool", "CategorizeMessages", "Channel",
    "Condition", "Coro", "Event", "HotSwapException", "Lock", "MetaSingleton",
    "MonitorException", "RLock", "Semaphore", "logger", "serialize", "unserialize",
    # asyncoro.disasyncoro (reference 2)
    "Location", "PeerStatus", "RCI",
    # asyncoro.discoro (reference 3)
    "Computation", "CoroInfo", "DiscoroStatus", "MaxPulseInterval", "MinPulseInterval",
    "MsgTimeout", "Scheduler", "StatusMessage",
    # ours
    "DiscoroError", "RemoteError", "local_cluster",
}  # fmt: skip


def test_export_list_is_pinned() -> None:
    # The facade loads its exports lazily (PEP 562): check the declared list and dir().
    assert set(discoro.__all__) == PUBLIC_API
    exported = {name for name in dir(discoro) if not name.startswith("_")}
    helpers = {"annotations", "importlib", "TYPE_CHECKING", "Any"}
    assert exported - SUBPACKAGES - helpers == PUBLIC_API
    assert all(getattr(discoro, name) is not None for name in PUBLIC_API)


def test_exports_are_the_real_objects() -> None:
    from discoro.cluster.scheduler import Scheduler
    from discoro.core.coro import Coro

    assert discoro.Coro is Coro and discoro.Scheduler is Scheduler
    assert discoro.DiscoroStatus is discoro.StatusMessage
