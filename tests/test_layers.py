"""The layer rule of DESIGN.md: imports inside discoro only point down the layer list."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import discoro

SRC = Path(__file__).resolve().parent.parent / "src" / "discoro"

# layer -> the layers of ours it may import (besides itself)
ALLOWED = {
    "errors": set(),
    "core": {"errors"},
    "wire": {"errors"},
    "net": {"errors", "core", "wire"},
    "cluster": {"errors", "core", "wire", "net"},
    "web": {"errors", "core", "wire", "net", "cluster"},
    # The programs sit on top: ``discoro --http`` serves the status page, so the scheduler
    # program imports the web layer (which in turn never imports a program).
    "cli": {"errors", "core", "wire", "net", "cluster", "web"},
    # public module paths of the original (``asyncoro.asyncfile``): thin re-exports
    "asyncfile": {"errors", "core"},
    # the original's module path for the web monitor (asyncoro.httpd), a front door to web
    "httpd": {"errors", "core", "wire", "net", "cluster", "web"},
    # the original's module paths asyncoro.discoro and asyncoro.disasyncoro: re-exports
    "discoro": {"errors", "core", "net", "cluster"},
    "disasyncoro": {"errors", "core", "net", "cluster", "asyncfile", "discoro", "httpd"},
}
# The one upward import: a computation's namespace on a server exposes the public API to
# shipped code as ``discoro``/``asyncoro`` (reference 3.6), so it imports the facade.
FACADE_IMPORTERS = {"cluster/namespace.py"}
FORBIDDEN_IN_WIRE = {"asyncio", "socket", "ssl", "selectors", "threading"}
STRING_IMPORTERS = {"import_module", "__import__"}


def layer_of(relative: str) -> str:
    """The layer of a module given by its path under ``src/discoro`` (``net/link.py``)."""
    return relative.split("/")[0].removesuffix(".py")


def package_of(relative: str) -> str:
    """The dotted package a module at ``relative`` lives in (``discoro.net`` for net/x.py)."""
    parts = ["discoro", *relative.split("/")[:-1]]
    return ".".join(parts)


def resolve(name: str, level: int, package: str) -> str:
    """The absolute module of ``from <level dots><name> import ...`` inside ``package``."""
    if level == 0:
        return name
    base = package.split(".")
    if level > 1:
        base = base[: -(level - 1)]
    return ".".join([*base, name] if name else base)


def _string_import(call: ast.Call, package: str) -> str | None:
    """The module a constant ``importlib.import_module(...)``/``__import__(...)`` names; an
    f-string or concatenation that starts with ``discoro`` is reported as ``discoro.?``."""
    func = call.func
    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
    if called not in STRING_IMPORTERS or not call.args:
        return None
    first = call.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        name = first.value
        level = len(name) - len(name.lstrip("."))
        return resolve(name[level:], level, package)
    head = first.values[0] if isinstance(first, ast.JoinedStr) and first.values else first
    while isinstance(head, ast.BinOp):
        head = head.left
    if isinstance(head, ast.Constant) and str(head.value).startswith("discoro"):
        return "discoro.?"  # built at run time: it cannot be checked, so it is a violation
    return None


def imported_modules(source: str, relative: str) -> list[str]:
    """Every module the source at ``relative`` imports: plain, relative (resolved, with
    each name of ``from . import a, b`` counted as a module) and by string."""
    package = package_of(relative)
    names: list[str] = []
    for node in ast.walk(ast.parse(source, relative)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = resolve(node.module or "", node.level, package)
            if node.module is None:  # from . import a, b: a and b may be modules
                names.extend(f"{module}.{alias.name}" for alias in node.names)
            else:
                names.append(module)
        elif isinstance(node, ast.Call):
            found = _string_import(node, package)
            if found is not None:
                names.append(found)
    return names


def violations(source: str, relative: str) -> list[str]:
    """The imports of the module at ``relative`` that break the layer rule."""
    layer = layer_of(relative)
    found = []
    for module in imported_modules(source, relative):
        parts = module.split(".")
        if parts[0] != "discoro":
            continue
        target = parts[1] if len(parts) > 1 else ""
        if not target and relative in FACADE_IMPORTERS:
            continue
        if target == "?" or (target != layer and target not in ALLOWED[layer]):
            found.append(f"{relative} imports {module}")
    return found


def modules() -> list[tuple[str, str]]:
    """(path under src/discoro, source) of every module but the facade."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        if path.parent == SRC and path.name == "__init__.py":
            continue  # the facade re-exports every layer
        found.append((path.relative_to(SRC).as_posix(), path.read_text()))
    return found


def test_imports_point_down_the_layer_list() -> None:
    found = [v for relative, source in modules() for v in violations(source, relative)]
    assert found == []


@pytest.mark.parametrize(
    ("relative", "source"),
    [
        ("net/x.py", "import discoro.cluster.scheduler"),
        ("net/x.py", "from discoro.cluster import scheduler"),
        ("net/x.py", "from ..cluster import scheduler"),
        ("net/x.py", "from .. import cluster"),
        ("net/sub/x.py", "from ...cluster.scheduler import Scheduler"),
        ("cluster/x.py", "import importlib\nimportlib.import_module('discoro.web')"),
        ("cluster/x.py", "from importlib import import_module\nimport_module('discoro.cli')"),
        ("cluster/x.py", "import importlib\nimportlib.import_module('..web', __package__)"),
        ("cluster/x.py", "__import__('discoro.web._server')"),
        ("core/x.py", "import importlib\nimportlib.import_module(f'discoro.{name}')"),
        ("core/x.py", "import importlib\nimportlib.import_module('discoro.' + name)"),
        ("web/x.py", "from discoro.cli import scheduler"),
        ("wire/x.py", "def f():\n    from ..core import coro"),
    ],
)
def test_every_kind_of_upward_import_is_caught(relative: str, source: str) -> None:
    assert len(violations(source, relative)) == 1


@pytest.mark.parametrize(
    ("relative", "source"),
    [
        ("cluster/x.py", "from . import protocol"),
        ("cluster/x.py", "from .protocol import Setup"),
        ("cluster/x.py", "from ..net import link"),
        ("cli/x.py", "import discoro.web"),
        ("core/x.py", "import importlib\nimportlib.import_module(user_module)"),
        ("cluster/namespace.py", "import discoro"),
    ],
)
def test_allowed_imports_pass(relative: str, source: str) -> None:
    assert violations(source, relative) == []


def test_wire_does_no_io() -> None:
    for relative, source in modules():
        if layer_of(relative) == "wire":
            bad = {
                m
                for m in imported_modules(source, relative)
                if m.split(".")[0] in FORBIDDEN_IN_WIRE
            }
            assert not bad, f"{relative} imports {bad}"


def test_every_module_is_in_a_known_layer() -> None:
    for relative, _ in modules():
        assert layer_of(relative) in ALLOWED, relative


def test_facade_is_importable_as_asyncoro() -> None:
    import discoro as asyncoro

    assert asyncoro.Coro is discoro.Coro


SUBPACKAGES = {"cli", "cluster", "core", "errors", "net", "web", "wire"}
PUBLIC_API = {
    # asyncoro (reference 1.14)
    "AsynCoro", "AsyncDBCursor", "AsyncThreadPool", "CategorizeMessages", "Channel",
    "Condition", "Coro", "Event", "HotSwapException", "Lock", "MetaSingleton",
    "MonitorException", "RLock", "Semaphore", "logger", "serialize", "unserialize",
    "AsyncSocket", "AsynCoroSocket",
    "asyncfile",  # the module (reference 1.13)
    "httpd",  # the module (reference 6)
    # asyncoro.disasyncoro (reference 2)
    "Location", "PeerStatus", "RCI", "MaxConnectionErrors",
    # asyncoro.discoro (reference 3)
    "Computation", "CoroInfo", "DiscoroStatus", "MaxPulseInterval", "MinPulseInterval",
    "MsgTimeout", "Scheduler", "StatusMessage",
    # asyncoro.discoro 4.5.6 (later-versions D1, D5)
    "DiscoroNodeInfo",
    # ours
    "DiscoroError", "RemoteError", "RunError", "SchedulerLost", "local_cluster",
    "SSHCluster", "SSHClusterError",  # issue 14: a cluster started over SSH
    # later versions (later-versions D1)
    "DiscoroCoroInfo", "DiscoroNodeAllocate", "DiscoroNodeAvailInfo",
    "Logger", "Singleton", "deserialize",
    "disasyncoro", "discoro",  # the modules
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
