"""The later versions' run methods of `Computation` (a mixin): ``run_result*``,
``run_results`` and ``run_async*`` (later-versions §2, D3).

``run_result(func, ...)`` / ``run_result_at(where, func, ...)`` run a CPU job that waits at
the scheduler for a free CPU slot, then wait for the job's end and give its final value.
The job's server sends the end to the computation's router as a `JobValue` (pickled value,
or the exception and its traceback); the value's future is registered under the request id
*before* the request goes out, so a job that ends at once is not missed. What the caller
gets:

| outcome | generator coroutine (``yield``) | ``async def`` coroutine (``await``) |
|---|---|---|
| the job ended | its final value | its final value |
| the job raised | the exception instance (``remote_traceback``: its text) | `RunError` raised |
| not created | the failure reply (None or the ``(class, name, text)`` tuple) | `RunError` raised |
| its process was lost | None | `RunError` (``type_name`` "ProcessLost") raised |

A failure never stalls later requests: each request waits for its own answer only, and every
wait ends when the computation ends (closed, or its scheduler lost). ``run_results(func,
iterable)`` starts one ``run_result`` per element, all at once, and lists the results in
input order (an element that is a tuple is the argument tuple; another iterable becomes a
tuple, so a str is split into characters, as in 4.5.6; anything else is one argument); an
``async def`` caller gets `RunError` for the first failed element, after all have ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
from collections.abc import Iterable

from discoro.cluster import protocol as p
from discoro.core.coro import Coro, wait_own
from discoro.core.kernel import AsynCoro
from discoro.errors import RemoteError, RunError
from discoro.net.location import Location

Target = tuple[object, ...]  # ("any",), ("node", addr), ("proc", Location), ...

LOST = "ProcessLost"


def _async_caller() -> bool:
    """Whether the coroutine calling now is an ``async def`` one (it awaits)."""
    coro = AsynCoro.cur_coro()
    return bool(getattr(coro, "_is_async", False))


def _decode(value: p.JobValue) -> tuple[bool, object]:
    """(failed, the value or exception) of a `JobValue`."""
    try:
        decoded = pickle.loads(value.data)
    except Exception as exc:
        text = f"the job's {'exception' if value.failed else 'value'} does not unpickle here"
        return True, RemoteError(type(exc).__name__, f"{text}: {exc}", value.text)
    if value.failed and isinstance(decoded, BaseException):
        with contextlib.suppress(AttributeError):
            decoded.remote_traceback = value.text  # type: ignore[attr-defined]
    return value.failed, decoded


def result_args(element: object) -> tuple[object, ...]:
    """The argument tuple of one ``run_results`` element (4.5.6's quirks kept)."""
    if isinstance(element, tuple):
        return element
    if isinstance(element, Iterable):
        return tuple(element)
    return (element,)


class ResultRuns:
    """``run_result*``, ``run_results``, ``run_async*`` (the attributes are `Computation`'s)."""

    _values: dict[int, asyncio.Future[object]]

    async def _run_single(
        self,
        where: Target,
        func: object,
        args: tuple[object, ...],
        kwargs: dict[str, object],
        kind: str,
    ) -> tuple[int, object]:
        raise NotImplementedError

    # -- async jobs ---------------------------------------------------------------------------

    async def run_async(self, func: object, *args: object, **kwargs: object) -> object:
        """An async (I/O-bound) job anywhere: it never takes a CPU slot. Waits for the
        first initialized server; then as `run`."""
        return (await self._run_single(("any",), func, args, kwargs, "async"))[1]

    async def run_async_at(
        self, where: object, func: object, *args: object, **kwargs: object
    ) -> object:
        """An async job at a node (its server with fewest jobs) or a server; as `run_at`."""
        return (await self._run_single(target_of(where), func, args, kwargs, "async"))[1]

    # -- jobs whose value comes back ------------------------------------------------------------

    async def run_result(self, func: object, *args: object, **kwargs: object) -> object:
        """Run a CPU job on a free CPU slot (waiting for one) and return its final value
        (see the module's table for failures)."""
        return await self._result(("any",), func, args, kwargs, _async_caller())

    async def run_result_at(
        self, where: object, func: object, *args: object, **kwargs: object
    ) -> object:
        """As `run_result` at a node (a free slot there; waits for one) or a server (waits
        until its slot is free). An unknown or uninitialized target fails at once."""
        return await self._result(target_of(where), func, args, kwargs, _async_caller())

    async def run_results(self, func: object, iterable: Iterable[object]) -> list[object]:
        """One `run_result` per element of ``iterable``, all started at once; the results
        in input order."""
        raising = _async_caller()
        outcomes = await asyncio.gather(
            *(self._outcome(("any",), func, result_args(element), {}) for element in iterable)
        )
        settled = [_settle(outcome) for outcome in outcomes]
        if raising:
            for error, _ in settled:
                if error is not None:
                    raise error
        return [value for _, value in settled]

    async def _result(
        self,
        where: Target,
        func: object,
        args: tuple[object, ...],
        kwargs: dict[str, object],
        raising: bool,
    ) -> object:
        error, value = _settle(await self._outcome(where, func, args, kwargs))
        if raising and error is not None:
            raise error
        return value

    async def _outcome(
        self, where: Target, func: object, args: tuple[object, ...], kwargs: dict[str, object]
    ) -> object:
        """A `JobValue`, a `JobLost`, a `_NotCreated` or None (the computation ended)."""
        rid, created = await self._run_single(where, func, args, kwargs, "result")
        if not isinstance(created, Coro):
            self._values.pop(rid, None)
            return _NotCreated(created)
        future = self._values.get(rid)
        if future is None:  # the computation ended meanwhile
            return None
        try:
            return await wait_own(future)  # as its own wait: no later than a reply (close)
        finally:
            self._values.pop(rid, None)


class _NotCreated:
    """The failure reply of a ``run_result*`` whose job was not created."""

    def __init__(self, reply: object) -> None:
        self.reply = reply


def _settle(outcome: object) -> tuple[RunError | None, object]:
    """What ``outcome`` means: the `RunError` an ``async def`` caller gets (None: a value)
    and what a generator caller gets."""
    if isinstance(outcome, _NotCreated):
        reply = outcome.reply
        if isinstance(reply, tuple) and len(reply) == 3:
            name = getattr(reply[0], "__name__", str(reply[0]))
            return RunError(name, f"{reply[1]} could not be created", str(reply[2])), reply
        return RunError("NotCreated", "the job was not created (see last_error)"), reply
    if isinstance(outcome, p.JobLost):
        return RunError(LOST, outcome.reason), None
    if not isinstance(outcome, p.JobValue):
        return RunError("ComputationClosed", "the computation ended before the job did"), None
    failed, value = _decode(outcome)
    if not failed:
        return None, value
    if isinstance(value, RemoteError):
        text = value.traceback_text or outcome.text
        error = RunError(value.type_name, value.message, text)
    elif isinstance(value, BaseException):
        error = RunError(type(value).__name__, str(value), outcome.text, value)
    else:  # raised something that is not an exception (cannot happen in Python 3)
        error = RunError(type(value).__name__, repr(value), outcome.text)
    error.__cause__ = value if isinstance(value, BaseException) else None
    return error, value


def _address(where: object) -> str:
    try:
        return Location(str(where), 0).addr
    except ValueError:
        return str(where)


def target_of(where: object) -> Target:
    """The scheduler's target for a ``run*_at`` ``where``: a `Location` is a server, anything
    else a node's address (a host name is resolved)."""
    if isinstance(where, Location):
        return ("proc", where)
    return ("node", _address(where))
