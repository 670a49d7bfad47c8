"""What a coroutine runs: its target function and the body object built from it.

A target is a generator function (the seed's style) or an async function; the body is what
calling it gives (a generator or a coroutine object), with ``coro=`` passed when the function
takes that keyword with a default. Facts about a function are cached per code object (one
``inspect`` pass per function, not per coroutine). Both call styles of the later versions are
accepted: ``(target, *args, **kwargs)`` and ``target=``/``args=``/``kwargs=`` keywords.
"""

from __future__ import annotations

import inspect
from types import CodeType, FunctionType
from typing import TYPE_CHECKING, Any, cast

from discoro.errors import NotACoroutineFunction

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from discoro.core.coro import Coro

# per function code: (is a generator function, is an async function, wants ``coro=``)
_target_info: dict[CodeType, tuple[bool, bool, bool]] = {}


def _describe_target(target: Callable[..., Any]) -> tuple[bool, bool, bool]:
    if type(target) is FunctionType:  # the common case, without getattr misses
        code: Any = target.__code__
    else:
        code = getattr(getattr(target, "__func__", target), "__code__", None)
    info = _target_info.get(code) if code is not None else None
    if info is not None:
        return info
    is_gen = inspect.isgeneratorfunction(target)
    is_async = inspect.iscoroutinefunction(target)
    wants = False
    if is_gen or is_async:
        param = inspect.signature(target).parameters.get("coro")
        wants = (
            param is not None
            and param.default is not inspect.Parameter.empty
            and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)
        )
    info = (is_gen, is_async, wants)
    if code is not None:
        _target_info[code] = info
    return info


def make_body(coro: Coro, target: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    """Call ``target`` to get the generator / coroutine object that ``coro`` will run."""
    is_gen, is_async, wants_coro = _describe_target(target)
    if not (is_gen or is_async):
        raise NotACoroutineFunction(
            f"a coroutine needs a generator function (def ... with yield) or an async "
            f"function (async def); {target!r} is neither"
        )
    if not args and kwargs and set(kwargs) <= {"args", "kwargs"}:
        params = inspect.signature(target).parameters
        if "args" not in params and "kwargs" not in params:
            args, kwargs = tuple(kwargs.get("args", ())), dict(kwargs.get("kwargs", {}))
    if wants_coro:
        kwargs["coro"] = coro
    return target(*args, **kwargs)


def split_target(
    args: tuple[object, ...], kwargs: dict[str, object]
) -> tuple[Callable[..., object], tuple[object, ...], dict[str, object]]:
    """The target and its arguments from ``(target, *args, **kwargs)`` or from the later
    keywords ``target=``, ``args=`` and ``kwargs=`` (used only when ``target=`` is given)."""
    if args:
        return cast("Callable[..., object]", args[0]), args[1:], kwargs
    if "target" not in kwargs:
        raise TypeError("a coroutine needs a target: (func, *args) or (target=func, ...)")
    kwargs = dict(kwargs)
    target = kwargs.pop("target")
    if not callable(target):
        raise TypeError(f"target must be a function, not {target!r}")
    target = cast("Callable[..., object]", target)
    extra_args = tuple(cast("Iterable[object]", kwargs.pop("args", ()) or ()))
    extra_kwargs = dict(cast("Mapping[str, object]", kwargs.pop("kwargs", {}) or {}))
    if kwargs:
        raise TypeError(f"unexpected keyword(s) with target=: {', '.join(sorted(kwargs))}")
    return target, extra_args, extra_kwargs
