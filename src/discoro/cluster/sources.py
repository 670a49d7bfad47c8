"""Source text of shipped code, so remote tracebacks show the user's own files and lines.

Code shipped by value (cloudpickle) keeps its code objects' file names and line numbers, but
a server process does not have those files, so a traceback formatted there would name the
file and line with no source line (or the server's own, different file of that name). The
client collects the text of the files its shipped code comes from (`collect`); a server
registers it in `linecache` under the very names the code objects carry (`register`) and
removes it when the computation closes (`unregister`), so tracebacks formatted on the server
read exactly as they would on the client.

Rules: only user files are shipped (not the standard library, installed packages or
discoro, which servers have), each at most `MAX_SOURCE` bytes; a registered entry is never
evicted by ``linecache.checkcache`` (no modification time), and `unregister` removes only
entries that are still the ones it registered.
"""

from __future__ import annotations

import inspect
import linecache
import os
import sys
import traceback
import types
from typing import TYPE_CHECKING

from discoro.cluster.shipping import installed_path, user_module

if TYPE_CHECKING:
    from collections.abc import Iterable

MAX_SOURCE = 1 << 20  # bytes of one source file
_DISCORO = os.path.dirname(os.path.dirname(os.path.realpath(__file__))) + os.sep


def _code_files(obj: object) -> set[str]:
    """The file names of the code objects of a function, or of a class's functions."""
    if inspect.isclass(obj):
        names: set[str] = set()
        for value in vars(obj).values():
            func = getattr(value, "__func__", value)
            if inspect.isfunction(func):
                names.add(func.__code__.co_filename)
        return names
    code = getattr(obj, "__code__", None)
    return {code.co_filename} if code is not None else set()


def collect(objects: Iterable[object], skip: Iterable[str] = ()) -> dict[str, str]:
    """``{file name: text}`` of the user files that ``objects`` (functions, classes) come
    from, and of the user modules they belong to (shipped by value); names in ``skip``
    (already shipped) are left out."""
    names: set[str] = set()
    for obj in objects:
        names |= _code_files(obj)
        module = user_module(getattr(obj, "__module__", "") or "")
        path = getattr(module, "__file__", None)
        if path:
            names.add(path)
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    sources = {}
    for name in sorted(names - set(skip)):
        if name.startswith("<") or not _user_file(name, main_file):
            continue
        text = _read(name)
        if text is not None:
            sources[name] = text
    return sources


def _user_file(name: str, main_file: str | None) -> bool:
    return name == main_file or not (installed_path(name) or _ours(name))


def _ours(name: str) -> bool:
    return os.path.realpath(name).startswith(_DISCORO)


def _read(name: str) -> str | None:
    try:
        if os.path.getsize(name) > MAX_SOURCE:
            return None
    except OSError:
        return None
    lines = linecache.getlines(name)
    return "".join(lines) if lines else None


def register(sources: dict[str, str]) -> dict[str, list[str]]:
    """Put ``sources`` into `linecache`; what was registered (for `unregister`)."""
    registered = {}
    for name, text in sources.items():
        if not isinstance(name, str) or not isinstance(text, str):
            continue
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        linecache.cache[name] = (len(text), None, lines, name)
        registered[name] = lines
    return registered


def unregister(registered: dict[str, list[str]]) -> None:
    for name, lines in registered.items():
        entry = linecache.cache.get(name)
        if entry is not None and len(entry) == 4 and entry[2] is lines:
            del linecache.cache[name]


def format_failure(exc_info: tuple[object, ...]) -> str:
    """The traceback text of ``exc_info`` (``(type, value, traceback)``), from the first frame
    of user code on (the frames of discoro's own driver before it say nothing to the user)."""
    value = exc_info[1] if len(exc_info) > 1 else None
    if not isinstance(value, BaseException):
        return f"{exc_info[0]!r}: {value!r}\n"
    tb = exc_info[2] if len(exc_info) > 2 else None
    first = tb if isinstance(tb, types.TracebackType) else value.__traceback__
    user_tb = first
    while user_tb is not None and _ours(user_tb.tb_frame.f_code.co_filename):
        user_tb = user_tb.tb_next
    return "".join(traceback.format_exception(type(value), value, user_tb or first))
