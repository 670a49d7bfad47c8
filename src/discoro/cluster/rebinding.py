"""Helpers of `Namespace`: telling shipped objects from library ones, rebinding what a class
holds, and a loader that notes every class cloudpickle fills in.

A class or function "came by value" when the server has no module that owns it: its module
is not loaded, or the module's dict is not the function's globals. Library objects (pickled
by reference, or static types) are never modified.
"""

from __future__ import annotations

import importlib.util
import pickle
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import io
    from collections.abc import Callable

_HEAPTYPE = 1 << 9
_IMMUTABLETYPE = 1 << 8


#: What a pickle holds when cloudpickle fills in a class in it (the function `Loader` hooks):
#: a pickle without these bytes has no class for `Loader` to note.
FILLS_CLASS = b"_class_setstate"


class Loader(pickle.Unpickler):
    """Notes every class cloudpickle fills in (its ``_class_setstate``) while loading."""

    def __init__(self, file: io.BytesIO, touched: list[type]) -> None:
        super().__init__(file)
        self.touched = touched

    def find_class(self, module: str, name: str) -> Any:
        found = super().find_class(module, name)
        if name != "_class_setstate" or not module.startswith("cloudpickle"):
            return found

        def setstate(cls: type, state: Any) -> Any:
            result = found(cls, state)
            self.touched.append(cls)
            return result

        return setstate


def importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name.partition(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def by_reference(cls: type, own: types.ModuleType) -> bool:
    """Whether ``cls`` is a static type or importable as ``module.qualname`` from a module
    other than ``own``."""
    flags = cls.__flags__
    if not flags & _HEAPTYPE or flags & _IMMUTABLETYPE:
        return True
    found: Any = sys.modules.get(cls.__module__)
    if found is None or found is own:
        return False
    for part in cls.__qualname__.split("."):
        found = getattr(found, part, None)
    return found is cls


def rebind_attribute(value: Any, rebind: Callable[[Any], Any]) -> Any:
    if isinstance(value, types.FunctionType):
        return rebind(value)
    if isinstance(value, staticmethod | classmethod) and isinstance(
        value.__func__, types.FunctionType
    ):
        func = rebind(value.__func__)
        return value if func is value.__func__ else type(value)(func)
    if isinstance(value, property):
        old: tuple[Any, Any, Any] = (value.fget, value.fset, value.fdel)
        fget, fset, fdel = (rebind(f) if isinstance(f, types.FunctionType) else f for f in old)
        if (fget, fset, fdel) != old:
            return property(fget, fset, fdel, value.__doc__)
    return value
