"""`MetaSingleton`: a metaclass whose classes have at most one live instance.

The first construction creates the instance; later constructions return it and ignore their
arguments (as the original did). A class may drop its instance with `_forget_instance()`, which
the kernel does after `terminate()` so a test or a long-lived host can start a fresh runtime.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar

_T = TypeVar("_T")


class MetaSingleton(type):
    _lock = threading.RLock()

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        instance = cls.__dict__.get("_singleton_instance")
        if instance is not None:
            return instance
        with MetaSingleton._lock:
            instance = cls.__dict__.get("_singleton_instance")
            if instance is None:
                instance = super().__call__(*args, **kwargs)
                type.__setattr__(cls, "_singleton_instance", instance)
            return instance

    def _existing_instance(cls: type[_T]) -> _T | None:
        instance: _T | None = cls.__dict__.get("_singleton_instance")
        return instance

    def _forget_instance(cls) -> None:
        with MetaSingleton._lock:
            type.__setattr__(cls, "_singleton_instance", None)


Singleton = MetaSingleton  # the later versions' name of the metaclass
