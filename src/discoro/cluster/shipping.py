"""Client-side packaging of a computation's code and files (DESIGN decision 8).

Functions, generator functions, async functions and classes travel *by value* with
cloudpickle: closures, lambdas and classes defined in ``__main__`` or in a user's own module
work, with no source text and no ``exec``. Modules and paths travel as files into each
server process's working directory (which is on ``sys.path``, so shipped modules import).
Code from discoro itself, the standard library and installed packages is pickled by
reference: servers have it too. Code objects keep their real file names (cloudpickle would
write ``<dynamic-code>``), so remote tracebacks name the user's files and lines.

Run arguments that are all plain scalars (numbers, strings, bytes, None) pickle with the
standard pickler: nothing in them can need cloudpickle, and a `run` per few microseconds
should not build a cloudpickle pickler each time (issue 9).
"""

from __future__ import annotations

import inspect
import io
import os
import pickle
import sys
import sysconfig
import types
from collections import ChainMap
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import cloudpickle

from discoro.cluster.protocol import ShippedFile

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

_INSTALLED = tuple(
    os.path.realpath(path)
    for path in {
        sysconfig.get_path("stdlib"),
        sysconfig.get_path("purelib"),
        sysconfig.get_path("platlib"),
    }
    if path
)


_CODE_REDUCE = cloudpickle.Pickler.dispatch_table.get(types.CodeType)


def _code_keeping_file(code: types.CodeType) -> tuple[object, tuple[object, ...]]:
    """cloudpickle's reduction of a code object, with the real file name put back."""
    assert _CODE_REDUCE is not None
    constructor, args = _CODE_REDUCE(code)
    kept: tuple[object, ...] = tuple(
        code.co_filename if arg == "<dynamic-code>" else arg for arg in args
    )
    return constructor, kept


class ShippingPickler(cloudpickle.Pickler):  # type: ignore[misc]  # untyped base
    """cloudpickle, except that code objects keep their file names."""

    if _CODE_REDUCE is not None:
        dispatch_table = ChainMap(
            {types.CodeType: _code_keeping_file}, cloudpickle.Pickler.dispatch_table
        )


def dumps(obj: object) -> bytes:
    with io.BytesIO() as file:
        ShippingPickler(file, protocol=cloudpickle.DEFAULT_PROTOCOL).dump(obj)
        return file.getvalue()


class ShippingError(ValueError):
    """A component that cannot be shipped; the message says which and why."""


def installed_path(path: str) -> bool:
    """Whether the file ``path`` belongs to the standard library or an installed package."""
    return os.path.realpath(path).startswith(_INSTALLED)


def user_module(name: str) -> types.ModuleType | None:
    """The module ``name`` if it is user code that servers will not have, else None."""
    if name in ("__main__", "builtins") or name.split(".")[0] == "discoro":
        return None
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    if module is None or path is None:
        return None
    if installed_path(path):
        return None
    return module


_user_module = user_module


@contextmanager
def by_value(objects: Iterable[Any]) -> Iterator[None]:
    """While active, cloudpickle ships the user modules of ``objects`` by value."""
    modules = {}
    for obj in objects:
        module = _user_module(getattr(obj, "__module__", "") or "")
        if module is not None:
            modules[module.__name__] = module
    for module in modules.values():
        cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        for module in modules.values():
            cloudpickle.unregister_pickle_by_value(module)


def _file(path: str) -> ShippedFile:
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ShippingError(f"cannot ship {path!r}: not a readable file")
    with open(path, "rb") as stream:
        data = stream.read()
    mode = os.stat(path).st_mode & 0o7777
    return ShippedFile(os.path.basename(path), data, mode, _under_cwd(path))


def _under_cwd(path: str) -> str:
    """``path`` relative to the client's working directory when it lies under it (the node
    directory keeps it there, later-versions D8), else ""."""
    try:
        relative = os.path.relpath(os.path.realpath(path), os.path.realpath(os.getcwd()))
    except ValueError:  # another drive
        return ""
    if relative.startswith(os.pardir) or os.path.isabs(relative):
        return ""
    return relative.replace(os.sep, "/")


def package(components: Any) -> tuple[bytes, list[str], list[ShippedFile]]:
    """``(code, names, files)`` for a `ComputationSpec` from the seed's component list."""
    if not isinstance(components, list):
        components = [components]
    shipped: dict[str, Any] = {}
    files: list[ShippedFile] = []
    for component in components:
        if isinstance(component, str):
            files.append(_file(component))
        elif inspect.ismodule(component):
            source = getattr(component, "__file__", None)
            if not source or not source.endswith(".py"):
                raise ShippingError(
                    f"cannot ship module {component.__name__}: it has no .py source file"
                )
            files.append(_file(source))
        elif inspect.isfunction(component) or inspect.isclass(component):
            shipped[component.__name__] = component
        else:
            shipped[type(component).__name__] = type(component)
    try:
        with by_value(shipped.values()):
            code = dumps(shipped)
    except Exception as exc:
        raise ShippingError(f"cannot ship components {sorted(shipped)}: {exc}") from exc
    return code, sorted(shipped), files


def pickle_function(func: Any) -> bytes:
    with by_value([func]):
        return dumps(func)


# exactly these types (not subclasses) pickle the same with the standard pickler
_PLAIN = frozenset({int, float, str, bytes, bool, complex, type(None)})


def pickle_arguments(
    args: tuple[Any, ...], kwargs: dict[str, Any], related: Iterable[Any]
) -> bytes:
    objects = [*related, *args, *kwargs.values()]
    plain = _PLAIN
    if all(type(obj) in plain for obj in objects):
        return pickle.dumps((args, kwargs), cloudpickle.DEFAULT_PROTOCOL)
    with by_value([*objects, *(type(o) for o in objects)]):
        return dumps((args, kwargs))
