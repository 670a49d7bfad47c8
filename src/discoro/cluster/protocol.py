"""The messages between client, scheduler and server processes.

They travel as ordinary coroutine messages (pickled by reference to this module, so every
process that has discoro can read them). User code and user data inside them are opaque
bytes (cloudpickle), so a shared scheduler never needs, or runs, a client's code.

Roles: the client's *router* coroutine (one per `Computation`) receives every reply and pulse
for that computation; the scheduler's *request* coroutine is registered as
``discoro_scheduler``; each server process runs one coroutine registered as ``discoro_proc``.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import TYPE_CHECKING, Any, TypeVar

from discoro.net.flow import travels_first

if TYPE_CHECKING:
    from discoro.cluster.nodeinfo import DiscoroNodeInfo
    from discoro.core.coro import Coro

T = TypeVar("T")


def by_fields(cls: type[T]) -> type[T]:
    """Class decorator for a dataclass sent once or twice per run: its instances pickle as
    the class and the tuple of their field values (rebuilt by calling the class), not as a
    ``__dict__`` with every field name: ~110 bytes and ~2.5 us (pickle + unpickle) less per
    message (issue 9). Not for classes with subclasses or ``init=False`` fields."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    assert len(names) > 1, "attrgetter of one name gives no tuple"
    values = attrgetter(*names)

    def __reduce__(self: object) -> tuple[object, ...]:
        return (type(self), values(self))

    cls.__reduce__ = __reduce__  # type: ignore[method-assign]
    return cls


@dataclass
class ShippedFile:
    name: str  # a base name: servers write it into their working directory
    data: bytes
    mode: int
    # its path relative to the client's working directory, when under it ("" otherwise): the
    # node directory keeps it there (``../sub/name`` from a server); base name if ""
    relpath: str = ""


@dataclass
class ComputationSpec:
    """What a client submits: its components (opaque), files and settings."""

    uid: str  # client-made unique id
    code: bytes  # cloudpickle of {name: component} (functions and classes)
    names: list[str]  # the names in ``code``
    files: list[ShippedFile]
    status_coro: Any  # Coro handle or None
    router: Any  # the client's router coroutine
    pulse_interval: float
    timeout: float
    zombie_period: float | None = None
    remote_output: bool = True  # servers send what jobs print and log (`Output`)
    # {file name: text} of the user files the code comes from (`discoro.cluster.sources`)
    sources: dict[str, str] = field(default_factory=dict)
    client_name: str = ""  # the client's name, for status displays
    created: float = 0.0  # wall-clock time the client submitted it
    # later versions (`discoro.cluster.node_gates`): hooks are names of shipped components
    node_setup: str | None = None  # run once per node, its globals given to its servers
    server_setup: str | None = None  # run in each server before it takes jobs
    disable_nodes: bool = False  # a node waits for `EnableNode`
    disable_servers: bool = False  # a server waits for `EnableServer` (with server_setup)
    peers_communicate: bool = False  # servers are introduced to each other (`Peers`)
    allocate: bool = False  # the client has node allocation rules (`AllocateQuery`)
    setup_timeout: float | None = None  # seconds a setup hook may run (None: unbounded)


# -- client -> scheduler ------------------------------------------------------------------


@dataclass
class Submit:
    spec: ComputationSpec


@dataclass
class RunRequest:
    """Run ``func`` on processes chosen by ``where``: ("any",), ("node", addr),
    ("proc", Location), ("each_node",), ("each_proc",), ("node_procs", addr)."""

    uid: str
    rid: int
    where: tuple[Any, ...]
    func: Any  # a shipped name (str) or cloudpickle bytes of the function
    func_name: str
    args: bytes  # cloudpickle of (args, kwargs)
    router: Any = None  # where a refusal goes
    sources: dict[str, str] = field(default_factory=dict)  # of ``func``, if not in the spec
    kind: str = "cpu"  # "cpu" (run*), "result" (run_result*) or "async" (run_async*)


@dataclass
class EnableNode:
    """Go on with the node at ``addr`` (``disable_nodes``): ``args`` (cloudpickle of
    ``(args, {})``) are for ``node_setup``."""

    uid: str
    addr: str
    args: bytes


@dataclass
class EnableServer:
    """Go on with the server at ``location`` (``disable_servers``): ``args`` (cloudpickle
    of ``(args, {})``) are for ``server_setup``. The scheduler forwards it to the server."""

    uid: str
    location: object
    args: bytes


@dataclass
class Allocation:
    """The client's answer to `AllocateQuery`: use ``count`` servers of the node (0: none)."""

    uid: str
    addr: str
    count: int


@dataclass
class ListRequest:
    uid: str
    rid: int
    what: str  # "nodes" or "procs"
    router: Any = None


@dataclass
class CloseRequest:
    """Close when the CPU jobs have ended (and, with ``await_async``, every job); ``force``:
    now, terminating whatever still runs (also when a close already waits)."""

    uid: str
    rid: int = 0
    router: Any = None
    await_async: bool = False
    force: bool = False


# -- scheduler -> client ------------------------------------------------------------------


@dataclass
class Reply:
    rid: int
    value: Any
    error: str = ""


@dataclass
class AllocateQuery:
    """Ask the client how many servers of this node to use (its allocation rules run there,
    never in the scheduler); the answer is `Allocation`."""

    uid: str
    info: DiscoroNodeInfo
    reply_to: object  # the scheduler's request coroutine


@dataclass
class Scheduled:
    """The computation is now current (``error`` set if it cannot run)."""

    uid: str
    error: str = ""


@travels_first  # liveness: ahead of queued user data (issue 9)
@dataclass
class Pulse:
    uid: str


@dataclass
class CloseWaiting:
    """A close of computation ``uid`` still waits for these jobs (their ``str``), sent
    every `MsgTimeout` while it waits; the client logs it."""

    uid: str
    coros: list[str]


@dataclass
class RunWaits:
    """Run request ``rid`` (of ``func_name``) is still held after the computation's timeout
    because no process is ready (``reason``); sent once, the client logs it."""

    rid: int
    func_name: str
    reason: str


@dataclass
class JobLost:
    """The job of run request ``rid`` (a ``run_result*``) will never report its value: its
    process was lost (``reason``)."""

    rid: int
    reason: str


# -- scheduler -> server ------------------------------------------------------------------


@dataclass
class Setup:
    spec: ComputationSpec
    scheduler: Any  # where the server reports (the scheduler's request coroutine)
    # this server runs the node's ``node_setup`` with these arguments (cloudpickle bytes of
    # ``(args, {})``) and answers `NodeSetupDone` first
    node_setup_args: bytes | None = None
    node_globals: bytes | None = None  # what node_setup left in its globals (cloudpickle)
    incarnation: int = 0  # the process works for the computation under this number


@dataclass
class Peers:
    """Connect to these servers of the computation (``peers_communicate``)."""

    uid: str
    locations: list[object]


@by_fields
@dataclass
class Run:
    uid: str
    rid: int
    func: Any
    func_name: str
    args: bytes
    reply_to: Any  # the client's router: the result goes straight to it
    fanout: int = 0  # >0: one of a run_each group; the router collects that many
    sources: dict[str, str] = field(default_factory=dict)  # as in `RunRequest`
    kind: str = "cpu"  # as in `RunRequest`; "result": send `JobValue` when the job ends


@dataclass
class Runs:
    """Several `Run`s for one server, placed in one scheduler loop turn: one message, not
    one each (issue 9); the server takes them one after another, in this order. Pickles
    as rows (`discoro.cluster.batch_rows`)."""

    runs: list[Run]

    def __reduce__(self) -> tuple[object, ...]:
        return batch_rows.reduce_runs(self)


@dataclass
class Close:
    uid: str


@dataclass
class Fenced:
    """The scheduler wrote off incarnation ``incarnation`` of this process for computation
    ``uid``: end its jobs without reporting them (they were reported lost), close, and say
    so with ``ServerClosed(fenced=True)``, to be set up again as a new incarnation."""

    uid: str
    incarnation: int
    reason: str = ""


@dataclass
class Quit:
    pass


@dataclass
class Watch:
    """Send ``scheduler`` idle `ServerPulse` messages (``uid`` None, with the node figures)
    while no computation is installed; a newer `Watch` replaces the older scheduler."""

    scheduler: Any
    interval: float = 0.0  # seconds between idle pulses (0: the server's default)


# -- server -> scheduler ------------------------------------------------------------------


@dataclass
class SetupDone:
    location: Any
    uid: str
    error: str = ""
    incarnation: int = 0


@dataclass
class NodeSetupDone:
    """The node's ``node_setup`` ended at ``location``: ``node_globals`` (cloudpickle of the
    globals it made) for the node's other servers, or ``error`` (then this server has
    uninstalled the computation)."""

    location: object
    uid: str
    node_globals: bytes = b""
    error: str = ""


@by_fields
@dataclass
class JobStarted:
    location: Any
    uid: str
    rid: int
    coro: Any
    func_name: str
    start_time: float
    args_repr: str = ""  # a short repr of the arguments, for status pages
    kind: str = "cpu"  # the `Run`'s kind: "cpu" and "result" jobs hold the CPU slot
    incarnation: int = 0
    # set when the client's router is where the scheduler is (a private scheduler): the
    # scheduler passes ``RunResult(rid, coro, None, fanout)`` on to ``reply_to`` once it has
    # recorded the job, so the client gets one message per run, not two (issue 9)
    reply_to: object = None
    fanout: int = 0


_SHORT_REPR = frozenset({float, bool, type(None)})  # repr within reprlib's limits
_INT_BOUND = 10**30  # reprlib shortens an int's repr past 40 characters


def _safe_repr(value: Any) -> str:
    kind = type(value)
    if kind in _SHORT_REPR or (kind is int and -_INT_BOUND < value < _INT_BOUND):
        return repr(value)  # what reprlib gives, without its dispatch (once per run)
    try:
        return reprlib.repr(value)  # bounded: a huge argument costs little
    except Exception:
        return f"<{type(value).__name__}>"


def args_repr(args: tuple[Any, ...], kwargs: dict[str, Any], limit: int = 80) -> str:
    """``a, b, key=c`` for status displays, cut to ``limit`` characters (never raises)."""
    parts = [_safe_repr(value) for value in args]
    parts += [f"{key}={_safe_repr(value)}" for key, value in kwargs.items()]
    text = ", ".join(parts)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class JobFailed:
    location: Any
    uid: str
    rid: int
    incarnation: int = 0


@by_fields
@dataclass
class JobDone:
    location: Any
    uid: str
    coro_id: int
    incarnation: int = 0
    # set when the computation's status coroutine is where the scheduler is: the job's end
    # as ``(job, fields, payload)`` of `discoro.net.handlers.encode_exit`; the scheduler gives
    # the status coroutine its `MonitorException` from it (one message per end, not two),
    # unless the job was already reported lost (issue 9)
    exit: tuple[object, dict[str, object], bytes] | None = None
    # the job's `JobStarted` when it had not gone out yet as the job ended (a job that ends
    # in its first step): one message per such run, not two; the scheduler takes the start
    # first, then the end (issue 9)
    started: JobStarted | None = None


@dataclass
class JobsDone:
    """The `JobDone`s of jobs that ended in one server loop turn, in order: one message,
    not one each (issue 9); the scheduler takes them one after another. Pickles as rows
    (`discoro.cluster.batch_rows`)."""

    dones: list[JobDone]

    def __reduce__(self) -> tuple[object, ...]:
        return batch_rows.reduce_jobs_done(self)


@travels_first
@dataclass
class ServerPulse:
    location: Any
    uid: str | None
    ncoros: int
    load: dict[str, Any] = field(default_factory=dict)  # node figures (issue: status page)
    incarnation: int = 0


@dataclass
class ServerClosed:
    location: Any
    uid: str
    idle: bool = False  # closed by itself after zombie_period without jobs
    incarnation: int = 0
    fenced: bool = False  # closed because the scheduler wrote this incarnation off


# -- server -> client router --------------------------------------------------------------


@dataclass
class JobError:
    """Job ``coro`` of computation ``uid`` at ``location`` ended with an exception that no
    one else hears of (it had no monitor but its server: no status coroutine, no
    ``monitor()``); ``text`` is its traceback, for the client to show."""

    location: object
    uid: str
    coro: object
    text: str


@by_fields
@dataclass
class RunResult:
    rid: int
    coro: Any  # the remote Coro, or None
    error: tuple[Any, ...] | None = None  # (exception class, function name, traceback text)
    fanout: int = 0
    location: object = None  # the process that made ``coro`` ...
    incarnation: int = 0  # ... and its incarnation then


@dataclass
class WrittenOff:
    """Scheduler -> the client's router: incarnation ``incarnation`` of the process at
    ``location`` was written off (``reason``); ``coros``: the coroutines the scheduler knew
    it ran. The client fences it and reports each of its jobs not yet ended as lost."""

    location: object
    incarnation: int
    reason: str
    coros: list[Coro] = field(default_factory=list)
    # ids of coroutines terminated there before it ended itself: they end as any terminate
    # does (``(StopIteration, None)``), not lost (`discoro.cluster.scheduler_liveness`)
    terminated: list[int] = field(default_factory=list)


@by_fields
@dataclass
class JobValue:
    """The end of the job of run request ``rid`` (a ``run_result*``): ``data`` is the pickle
    of its final value, or with ``failed`` of the exception that ended it (``text``: the
    traceback)."""

    rid: int
    data: bytes
    failed: bool = False
    text: str = ""


# -- anyone -> scheduler: status (``discoro status``, the status page) ----------------------


@dataclass
class StatusQuery:
    """Ask the scheduler for `Scheduler.status()`; the answer goes to ``reply_to``."""

    reply_to: Any


@dataclass
class StatusReport:
    """The scheduler's answer to `StatusQuery`: the JSON-able snapshot."""

    snapshot: dict[str, Any]


@dataclass
class Output:
    """What jobs of computation ``uid`` at ``location`` printed or logged: ``stream`` is
    ``"stdout"``, ``"stderr"`` or ``"log"``; ``text`` is whole lines (the last may lack its
    newline when a job ended mid-line); ``level`` the `logging` level to show them at."""

    location: Any
    uid: str
    stream: str
    text: str
    level: int = 20  # logging.INFO


# how `Runs` and `JobsDone` pickle (it needs the classes above)
from discoro.cluster import batch_rows  # noqa: E402
