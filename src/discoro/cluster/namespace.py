"""`Namespace`: the home of one computation's code on a server process (DESIGN decision 8,
reference 3.6 "namespace requirements").

Theory of operation:
- A computation gets a fresh module object. While it is installed it *is* ``__main__``
  (``sys.modules["__main__"]`` points at it), so objects a client pickled by reference as
  ``__main__.X`` resolve to the shipped ``X``, and instances of shipped classes pickle back as
  ``__main__.X``.
- cloudpickle gives every function shipped by value its own small globals dict. We rebind each
  such function (``types.FunctionType`` over the same code, defaults and closure cells) so its
  ``__globals__`` *is* the namespace dict; the globals cloudpickle captured are merged in
  without overwriting names the computation already has. So ``global`` state is shared by all
  of a computation's coroutines, as the seed's programs expect. Methods of shipped classes,
  functions held in closure cells (decorators) and functions shipped later with a run request
  are rebound the same way.
- Objects shipped by value from a client's own module ``M`` (not only ``__main__``) keep
  ``M`` as their module name, and ``M`` resolves to the namespace while the computation is
  installed (unless the server has a real ``M``), so they pickle by reference both ways.
- Shipped files are written into the working directory, which is on ``sys.path`` while the
  computation is installed, so shipped modules import by name. With a *node directory* (the
  parent of every working directory of a node's servers, later-versions D8) they are also
  written there (atomically: the node's servers write the same files at once), so ``../name``
  reaches them from any server of the node; it is on ``sys.path`` after the working
  directory, and each server removes the files it wrote there at close.

Invariants:
- At most one namespace is installed per process (the server refuses a second computation).
- `close` undoes everything `install` did: ``__main__`` is restored, modules loaded from the
  working directory leave ``sys.modules``, the working directory is emptied and leaves
  ``sys.path``. It is idempotent.
- A function is rebound only if its globals are not a real module's dict, so library
  functions pickled by reference are never touched.
"""

from __future__ import annotations

import builtins
import contextlib
import gc
import importlib
import importlib.util
import io
import os
import pickle
import shutil
import sys
import time
import traceback
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import discoro
from discoro.cluster.procdir import empty_directory
from discoro.cluster.rebinding import (
    FILLS_CLASS,
    Loader,
    by_reference,
    importable,
    rebind_attribute,
)
from discoro.cluster.shipping import ShippingError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from discoro.cluster.protocol import ShippedFile

__all__ = ["PRESETS", "Namespace", "ShippingError"]

#: names every namespace starts with (reference 3.6); shipped globals may replace them
PRESETS: dict[str, Any] = {
    "asyncoro": discoro,
    "discoro": discoro,
    "os": os,
    "sys": sys,
    "time": time,
    "traceback": traceback,
    "shutil": shutil,
}
#: what `_rebound` pairs: shipped functions and classes (each entry pairs two of one kind)
_Shipped = types.FunctionType | type
_MODULE_KEYS = frozenset({"__name__", "__builtins__", "__package__", "__file__", "__path__"})


def _safe_basename(name: str) -> str:
    base = os.path.basename(name)
    if not base or base in (".", "..") or base != name:
        raise ShippingError(f"shipped file name {name!r} is not a plain file name")
    return base


class Namespace:
    """One computation's globals on a server process, answering for ``__main__``."""

    def __init__(
        self, workdir: str | os.PathLike[str], node_dir: str | os.PathLike[str] | None = None
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.node_dir = Path(node_dir).resolve() if node_dir is not None else None
        self._node_files: list[Path] = []  # what this namespace wrote into node_dir
        self.module = types.ModuleType("__main__", "a discoro computation")
        self.globals: dict[str, Any] = self.module.__dict__
        self.globals["__builtins__"] = builtins
        self.globals.update(PRESETS)
        self._presets = set(PRESETS)  # names still holding their preset value
        self._rebound: dict[int, tuple[_Shipped, _Shipped]] = {}  # id(original) -> (original, new)
        self._aliases: list[str] = []  # user module names that resolve to this namespace
        self._previous_main: types.ModuleType | None = None
        self.installed = False

    # -- install ---------------------------------------------------------------------------

    def install(self, code: bytes, files: Iterable[ShippedFile] = ()) -> list[str]:
        """Write ``files``, become ``__main__`` and load the components in ``code`` (a
        cloudpickle of ``{name: component}``); the names installed."""
        self.write_files(files)
        self.activate()
        components = self.loads(code) if code else {}
        if not isinstance(components, dict):
            raise ShippingError(f"computation code must be a dict, not {type(components)}")
        for name, component in components.items():
            self.define(name, component)
        return list(components)

    def activate(self) -> None:
        """Answer for ``__main__`` and put the working directory on ``sys.path``."""
        if self.installed:
            return
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._previous_main = sys.modules.get("__main__")
        sys.modules["__main__"] = self.module
        if str(self.workdir) not in sys.path:
            sys.path.insert(0, str(self.workdir))
        if self.node_dir is not None and str(self.node_dir) not in sys.path:
            sys.path.insert(1, str(self.node_dir))
        importlib.invalidate_caches()
        self.installed = True

    def write_files(self, files: Iterable[ShippedFile]) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for shipped in files:
            path = self.workdir / _safe_basename(shipped.name)
            path.write_bytes(shipped.data)
            os.chmod(path, shipped.mode & 0o7777 or 0o644)
            if self.node_dir is not None:
                where = _node_path(self.node_dir, getattr(shipped, "relpath", "") or path.name)
                self._node_files.append(_write_atomically(where, path))
        importlib.invalidate_caches()

    def define(self, name: str, component: Any) -> Any:
        """Put ``component`` in the namespace under ``name`` (rebinding it if it is a shipped
        function or class); the object stored."""
        value = self._adopt(component)
        self.globals[name] = value
        self._presets.discard(name)
        return value

    def load_function(self, data: bytes, name: str = "") -> Any:
        """A function shipped with a run request (cloudpickle bytes), rebound into the
        namespace and (re)defined there under its name."""
        func = self._adopt(self.loads(data))
        if name and name.isidentifier():
            self.globals[name] = func
            self._presets.discard(name)
        return func

    def lookup(self, name: str) -> Any:
        try:
            return self.globals[name]
        except KeyError:
            raise NameError(f"name {name!r} is not defined in the computation") from None

    def loads(self, data: bytes) -> Any:
        """Unpickle ``data`` here: references to ``__main__`` resolve to this namespace, and
        every class that comes by value is adopted (cloudpickle refills a class it has seen
        before with fresh methods; they are rebound again)."""
        if type(data) is bytes and FILLS_CLASS not in data:  # no class by value (most run
            return pickle.loads(data)  # arguments): nothing to note, the C unpickler alone
        touched: list[type] = []
        value = Loader(io.BytesIO(data), touched).load()
        for cls in touched:
            self._adopt_class(cls, again=True)
            name = cls.__name__
            if name.isidentifier() and (name not in self.globals or name in self._presets):
                self.define(name, cls)  # so its instances pickle back by reference
        return value

    # -- rebinding -------------------------------------------------------------------------

    def _adopt(self, obj: Any) -> Any:
        if isinstance(obj, types.FunctionType):
            return self._rebind(obj)
        if isinstance(obj, type):
            return self._adopt_class(obj)
        return obj

    def _shipped(self, func: types.FunctionType) -> bool:
        """Whether ``func`` came by value (its globals belong to no loaded module)."""
        glb = func.__globals__
        if glb is self.globals:
            return False
        module = sys.modules.get(str(glb.get("__name__", "")))
        return module is None or getattr(module, "__dict__", None) is not glb

    def _rebind(self, func: types.FunctionType) -> types.FunctionType:
        if not self._shipped(func):
            return func
        done = self._rebound.get(id(func))
        if done is not None:
            return cast("types.FunctionType", done[1])  # keyed by a function: its copy
        new = types.FunctionType(
            func.__code__, self.globals, func.__name__, func.__defaults__, func.__closure__
        )
        self._rebound[id(func)] = (func, new)
        new.__kwdefaults__ = func.__kwdefaults__
        new.__qualname__ = func.__qualname__
        new.__doc__ = func.__doc__
        new.__dict__.update(func.__dict__)
        new.__annotations__ = func.__annotations__
        new.__module__ = self._home(func.__module__)
        self._merge(func.__globals__)
        for cell in func.__closure__ or ():
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if isinstance(content, types.FunctionType | type):
                cell.cell_contents = self._adopt(content)
        return new

    def _adopt_class(self, cls: type, again: bool = False) -> type:
        if id(cls) in self._rebound and not again:
            return cls
        self._rebound[id(cls)] = (cls, cls)
        if by_reference(cls, self.module):
            return cls  # a library class (or one already here)
        cls.__module__ = self._home(cls.__module__)
        for attr, value in list(vars(cls).items()):
            replacement = rebind_attribute(value, self._rebind)
            if replacement is not value:
                setattr(cls, attr, replacement)
        return cls

    def _home(self, name: str | None) -> str:
        """The module name a shipped object keeps: ``__main__``, or the name of the user
        module it came from (shipped by value), which from now on resolves to this namespace
        unless the server has a real module of that name."""
        if not name or name == "__main__":
            return "__main__"
        if sys.modules.get(name) is self.module:
            return name
        if name in sys.modules or importable(name):
            return "__main__"
        parts = name.split(".")
        for end in range(1, len(parts) + 1):
            prefix = ".".join(parts[:end])
            if prefix not in sys.modules:
                sys.modules[prefix] = self.module
                self._aliases.append(prefix)
        return name

    def _merge(self, captured: dict[str, Any]) -> None:
        """Add the globals cloudpickle captured for a function, keeping existing names."""
        for key, value in list(captured.items()):
            if key in _MODULE_KEYS:
                continue
            if key in self.globals and key not in self._presets:
                continue
            self._presets.discard(key)
            self.globals[key] = value  # placeholder first: rebinding may recurse here
            self.globals[key] = self._adopt(value)

    # -- close -----------------------------------------------------------------------------

    def close(self) -> None:
        """Undo `install`: restore ``__main__``, drop the computation's modules and files."""
        if sys.modules.get("__main__") is self.module and self._previous_main is not None:
            sys.modules["__main__"] = self._previous_main
        for alias in self._aliases:
            if sys.modules.get(alias) is self.module:
                del sys.modules[alias]
        self._aliases.clear()
        self._previous_main = None
        self.installed = False
        for name, module in list(sys.modules.items()):
            if self._from_workdir(module):
                del sys.modules[name]
        for directory in (str(self.workdir), str(self.node_dir or self.workdir)):
            while directory in sys.path:
                sys.path.remove(directory)
            sys.path_importer_cache.pop(directory, None)
        empty_directory(self.workdir)
        for path in self._node_files:
            with contextlib.suppress(OSError):
                path.unlink()
            _remove_empty_parents(path.parent, self.node_dir)
        self._node_files.clear()
        importlib.invalidate_caches()
        self._rebound.clear()
        gc.collect()  # shipped classes form cycles; free them so cloudpickle forgets them

    def _from_workdir(self, module: Any) -> bool:
        path = getattr(module, "__file__", None)
        if not path:
            return False
        try:
            resolved = Path(path).resolve()
        except (OSError, ValueError):
            return False
        if resolved.is_relative_to(self.workdir):
            return True
        return resolved in self._node_files


def _node_path(node_dir: Path, relpath: str) -> Path:
    """Where a file with path ``relpath`` (relative, ``/``-separated) goes in ``node_dir``;
    a path that would leave it is a `ShippingError`."""
    parts = relpath.split("/")
    if not relpath or relpath.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ShippingError(f"shipped file path {relpath!r} is not a plain relative path")
    return node_dir.joinpath(*parts)


def _write_atomically(target: Path, source: Path) -> Path:
    """Copy ``source`` to ``target`` (a temporary file, then a rename: a reader never sees
    half a file, and concurrent writers of one file both succeed)."""
    directory = target.parent
    directory.mkdir(parents=True, exist_ok=True)
    temporary = directory / f".{target.name}.{os.getpid()}.tmp"
    shutil.copy2(source, temporary)
    os.replace(temporary, target)
    return target


def _remove_empty_parents(directory: Path, stop: Path | None) -> None:
    """Remove ``directory`` and its parents up to (not including) ``stop`` while empty."""
    while stop is not None and directory != stop and directory.is_relative_to(stop):
        try:
            directory.rmdir()
        except OSError:
            return
        directory = directory.parent
