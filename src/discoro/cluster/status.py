"""Status messages a client's ``status_coro`` receives (reference 3.2).

`StatusMessage(status, info)` (alias `DiscoroStatus`) with the codes below (both the seed's
``Proc*`` names and the later ``Server*`` names, same values), and `CoroInfo` for
``CoroCreated``. Besides these the status coroutine gets one `MonitorException` for every
remote coroutine created by the run methods, when it ends.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class StatusMessage(NamedTuple):
    """What the scheduler tells a status coroutine (alias ``DiscoroStatus``): ``status`` is one
    of the codes (``Scheduler.ProcInitialized``, ...); ``info`` is a `Location` for process
    codes, a `DiscoroNodeInfo` (the node's address string, with the later versions' fields)
    for node codes, a `CoroInfo` for ``CoroCreated``, the scheduler's `Location` for
    ``ComputationClosed``."""

    status: int
    info: Any


DiscoroStatus = StatusMessage


class CoroInfo(NamedTuple):
    """The ``info`` of a ``CoroCreated`` status message: the remote coroutine, its arguments
    and its start time (``time.time()``)."""

    coro: Any
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    start_time: float


class Status:
    """The status codes; `Scheduler` has them as class attributes too."""

    NodeDiscovered = 1
    NodeInitialized = 2
    NodeClosed = 3
    NodeIgnore = 4
    NodeDisconnected = 5

    ProcDiscovered = 11
    ProcInitialized = 12
    ProcClosed = 13
    ProcIgnore = 14
    ProcDisconnected = 15

    ServerDiscovered = ProcDiscovered
    ServerInitialized = ProcInitialized
    ServerClosed = ProcClosed
    ServerIgnore = ProcIgnore
    ServerDisconnected = ProcDisconnected

    CoroCreated = 20
    ComputationScheduled = 23  # the later versions define it and never send it
    ComputationClosed = 25


def status_name(code: int) -> str:
    for name, value in vars(Status).items():
        if value == code and not name.startswith(("Server", "_")):
            return name
    return str(code)
