"""The exception hierarchy of discoro.

Every error discoro raises on its own account derives from `DiscoroError`. The seed's
message-like exceptions (`MonitorException`, `HotSwapException`) derive from plain `Exception`
as in the original, because programs catch and construct them directly.
"""

from __future__ import annotations


class DiscoroError(Exception):
    """Root of discoro's own errors."""


class NotACoroutineFunction(DiscoroError, TypeError):
    """A Coro target that is neither a generator function nor an async function."""


class WrongThreadError(DiscoroError, RuntimeError):
    """An API used from a thread (or coroutine) where it would deadlock or is not allowed."""


class ShutdownError(DiscoroError, RuntimeError):
    """The runtime has been terminated; no new coroutines can be created."""


class ProtocolError(DiscoroError):
    """A peer sent bytes that do not follow the wire protocol."""


class AuthenticationError(ProtocolError):
    """A peer failed the mutual challenge-response (wrong secret, replay, ...)."""


class VersionMismatch(ProtocolError):
    """A peer speaks another protocol version."""


class RemoteError(DiscoroError):
    """An exception raised on another process, carried back as its type name and traceback."""

    def __init__(self, type_name: str, message: str, traceback_text: str = "") -> None:
        super().__init__(type_name, message, traceback_text)
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text

    def __str__(self) -> str:
        return f"{self.type_name}: {self.message}"


class RunError(RemoteError):
    """Raised in an ``async def`` coroutine that awaits ``run_result``/``run_result_at``/
    ``run_results`` when the job failed: it raised (``exception`` is the remote exception
    instance, also the ``__cause__``; ``traceback_text`` its remote traceback), it could not
    be created (``exception`` None, the reason in ``message``), or its process was lost
    (``type_name`` "ProcessLost"). Generator coroutines that ``yield`` these calls get the
    later versions' return values instead (the exception instance, the failure tuple, None).
    """

    def __init__(
        self,
        type_name: str,
        message: str,
        traceback_text: str = "",
        exception: BaseException | None = None,
    ) -> None:
        super().__init__(type_name, message, traceback_text)
        self.exception = exception

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}\n{self.traceback_text}" if self.traceback_text else text


class MonitorException(Exception):
    """Sent (not raised) to each monitor of a coroutine when it ends.

    ``args[0]`` is the coroutine; ``args[1]`` is ``(StopIteration, value)`` for a normal end,
    else the exception info: ``(type, value, traceback)`` for a local monitor, ``(type, value)``
    for a remote one.

    Where the traceback is: a local monitor has it in ``args[1][2]``. A remote monitor gets
    it as text in ``remote_traceback``, formatted where the coroutine ran; for code shipped
    by a `Computation` it names the client's own files, line numbers and source lines. It is
    None for a normal end and for local monitors.

    Who shows a failed remote job: a job (a coroutine a `Computation`'s ``run*`` created)
    that ends with an exception is logged once at the client, with its traceback, as a
    warning of ``discoro.logger`` ("remote coroutine ... failed"), unless the program
    handles it: when the computation has a status coroutine (which receives every job's
    `MonitorException`), or when a coroutine of the program monitors the job (``monitor()``)
    before it ends, the traceback is only in their `MonitorException`; a ``run_result*``
    job's caller gets the exception (or `RunError`) instead.
    """

    #: the traceback text of a remote coroutine that failed (None for local ones)
    remote_traceback: str | None = None


class HotSwapException(Exception):
    """Thrown into a coroutine to replace its generator; ``args[0]`` is the new generator."""


class ForeignCluster(ProtocolError):
    """A discovery datagram carries another cluster's tag (made from another secret)."""


class LocalProtocolError(DiscoroError, RuntimeError):
    """This side used a wire connection wrongly (e.g. sent before authenticating): a bug."""
