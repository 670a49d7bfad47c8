"""`RCI`: remote coroutine invocation (reference 2.9).

An RCI publishes a coroutine function under a name; a program anywhere in the cluster
locates it and calls it to start a coroutine in the RCI's process::

    rci = RCI(compute)            # owner: compute is a generator function or async def
    rci.register()
    ...
    rci = yield RCI.locate("compute")          # anywhere
    rcoro = yield rci(1, 2, verbose=True)      # a Coro handle for compute(1, 2, ...) there

Op ``rci_call`` {n: name} + pickled ``(args, kwargs)`` is answered with ``{r: 0}`` + the new
coroutine's reference, or ``{r: -1, tn, tm, tb}`` (type name, message and traceback text of
what went wrong at the owner).

Invariants:
- An RCI lives in one process; it pickles to a reference ``(name, location)`` that resolves to
  the RCI itself in its owner and to a remote handle anywhere else.
- ``kernel.rcis`` (name -> RCI) holds exactly the registered RCIs of
  this process; it is what `locate` and ``rci_call`` look in.
- A call never waits longer than `CALL_TIMEOUT`: no answer gives None; an answer saying the
  coroutine could not be created raises `RemoteError` with the owner's traceback text.
"""

from __future__ import annotations

import inspect
import pickle
import traceback
from typing import TYPE_CHECKING, Any, cast

from discoro.core.coro import Coro
from discoro.core.kernel import AsynCoro
from discoro.core.located import NamedLocated
from discoro.core.log import logger
from discoro.errors import NotACoroutineFunction, RemoteError
from discoro.net.runtime import network_of, run_on_network

if TYPE_CHECKING:
    from collections.abc import Callable

    from discoro.net.network import Network
    from discoro.net.peers import Peer
    from discoro.wire.messages import Message

PROTOCOL = pickle.HIGHEST_PROTOCOL
CALL_TIMEOUT = 2.0


def _registry(kernel: AsynCoro) -> dict[str, RCI]:
    """This process's registered RCIs."""
    return cast("dict[str, RCI]", kernel.rcis)  # this module keeps the table


class RCI(NamedLocated):
    """``RCI(method, name=None)``: ``method`` (a generator function or an async function)
    callable by name from other processes; ``name`` defaults to ``method.__name__``."""

    __slots__ = ("_kernel", "_location", "_method", "_name", "_remote")

    def __init__(self, method: Callable[..., Any], name: str | None = None) -> None:
        if not (inspect.isgeneratorfunction(method) or inspect.iscoroutinefunction(method)):
            raise NotACoroutineFunction(
                f"an RCI needs a generator function (def ... with yield) or an async function "
                f"(async def); {method!r} is neither"
            )
        name = method.__name__ if name is None else name
        if not isinstance(name, str) or not name:
            raise TypeError(f"an RCI name must be a non-empty str, not {name!r}")
        self._kernel = AsynCoro.instance()
        self._name = name
        self._method: Callable[..., Any] | None = method
        self._location: Any = None
        self._remote = False

    @classmethod
    def _handle(cls, name: str, location: Any) -> RCI:
        """A handle for the RCI ``name`` of the process at ``location`` (None: an RCI of this
        process that is no longer registered; calling it gives None)."""
        handle = cls.__new__(cls)
        handle._init_handle(name, location)
        return handle

    def _init_handle(self, name: str, location: object) -> None:
        self._kernel = AsynCoro.instance()
        self._name = name
        self._method = None
        self._location = location
        self._remote = location is not None

    # -- identity -------------------------------------------------------------------------

    def __reduce__(self) -> tuple[Any, ...]:
        return (rci_from_reference, (self._name, self._where()))

    # -- names ----------------------------------------------------------------------------

    def register(self) -> int:
        """Make this RCI locatable (and callable) by its name: 0, or -1 if another RCI of
        this process holds the name or this is a remote handle."""
        if self._remote or self._method is None:
            return -1
        holder = _registry(self._kernel).setdefault(self._name, self)
        if holder is not self:
            return -1
        # peers can only call it once we are on the network (installed: discoro.net is)
        self._kernel.network()
        return 0

    def unregister(self) -> int:
        """Stop being locatable and callable by peers: 0, or -1 if it was not registered."""
        table = _registry(self._kernel)
        if self._remote or table.get(self._name) is not self:
            return -1
        del table[self._name]
        return 0

    @staticmethod
    async def locate(name: str, location: Any = None, timeout: float | None = None) -> Any:
        """Find the RCI registered as ``name`` here or at a peer (None if not found)."""
        kernel = AsynCoro.instance()
        if location is None or (kernel.network_started and location == kernel.location):
            local = _registry(kernel).get(name)
            if local is not None or location is not None:
                return local
        return await kernel.network().locate("rci", name, location, timeout)

    # -- calling --------------------------------------------------------------------------

    async def __call__(self, *args: Any, **kwargs: Any) -> Coro | None:
        """Start ``method(*args, **kwargs)`` as a coroutine in the RCI's process: the `Coro`
        (a remote handle when that process is another one), None if the owner did not
        answer within `CALL_TIMEOUT` or no longer exists; raises `RemoteError` (with the
        owner's traceback text) if the coroutine could not be created there."""
        if not self._remote:
            if self._method is None:
                logger.warning("RCI %s is gone", self)
                return None
            return Coro(self._method, *args, **kwargs)
        network = network_of(self._kernel)
        payload = pickle.dumps((args, kwargs), PROTOCOL)

        async def call() -> Message | None:  # on the network's loop (a thread's, perhaps)
            await network.started()
            return await network.request(
                self._location, "rci_call", {"n": self._name}, payload, CALL_TIMEOUT
            )

        reply = await run_on_network(self._kernel, call())
        if reply is None:
            logger.warning("RCI %s did not answer", self)
            return None
        fields = reply.fields
        if fields.get("r") == 0:
            try:
                coro = pickle.loads(reply.payload or b"")
            except Exception as exc:
                logger.warning("RCI %s: cannot unpickle its coroutine: %r", self, exc)
                return None
            return coro if isinstance(coro, Coro) else None
        raise RemoteError(str(fields.get("tn")), str(fields.get("tm")), str(fields.get("tb", "")))


def rci_from_reference(name: str, location: Any) -> RCI:
    """Unpickle an RCI reference: the registered RCI itself in its owner process, a remote
    handle anywhere else."""
    kernel = AsynCoro.instance()
    if location is None or location == kernel.location:
        local = _registry(kernel).get(name)
        return local if local is not None else RCI._handle(name, None)
    return RCI._handle(name, location)


def handlers(net: Network) -> dict[str, Callable[[Peer, Message], None]]:
    """The owner's side: ``rci_call`` creates the coroutine and answers with its reference."""
    rcis = _registry(net.kernel)

    def failure(error: BaseException) -> dict[str, Any]:
        return {
            "r": -1,
            "tn": type(error).__name__,
            "tm": str(error),
            "tb": "".join(traceback.format_exception(error)),
        }

    def on_rci_call(peer: Peer, message: Message) -> None:
        name = message.fields.get("n")
        rci = rcis.get(name) if isinstance(name, str) else None
        if rci is None or rci._method is None:
            error = LookupError(f"no RCI named {name!r} is registered at {net.location}")
            net.reply(peer, message.rid, failure(error))
            return
        try:
            args, kwargs = pickle.loads(message.payload or b"")
            coro = Coro(rci._method, *args, **kwargs)
            payload = pickle.dumps(coro, PROTOCOL)
        except Exception as exc:
            logger.debug("RCI %s called by %s failed: %r", rci, peer, exc)
            net.reply(peer, message.rid, failure(exc))
            return
        net.reply(peer, message.rid, {"r": 0}, payload)

    return {"rci_call": on_rci_call}
