"""What both modes of an `AsyncSocket` share: the raw socket, its timeout, TLS settings,
closing, unwrapping and delegation of every other attribute to the raw socket.

Invariants:
- ``_timeout`` is the socket's timeout as the program set it (None: wait for ever). In
  asynchronous mode the raw socket itself is always non-blocking and the timeout is applied
  by the waits; in blocking mode the raw socket carries the timeout.
- ``_waits`` maps the futures of the readiness waits in progress (asynchronous mode) to
  their direction (True: writing); each has a reader or writer registered on ``_loop`` for
  the socket's descriptor, and there is at most one wait per direction. Closing removes
  those registrations *before* the descriptor is closed (on the loop's thread) and fails the
  waits with EBADF, so a waiting coroutine wakes and no callback fires on a reused number.
- Once closed (or unwrapped) a socket does no more I/O and never touches the loop again.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from typing import TYPE_CHECKING, ClassVar, Self

from discoro.core.socket_tls import SSLVersion, TLSSettings, pinned_version

if TYPE_CHECKING:
    from types import TracebackType


def closed_error() -> OSError:
    return OSError(errno.EBADF, "the socket was closed")


def _current_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class SocketBase:
    """The state and the mode-independent methods of `AsyncSocket`."""

    __slots__ = ("_blocking", "_closed", "_loop", "_sock", "_timeout", "_tls", "_waits")

    _default_ssl_version: ClassVar[SSLVersion] = None

    _sock: socket.socket
    _timeout: float | None
    _tls: TLSSettings
    _waits: dict[asyncio.Future[bool], bool]
    _loop: asyncio.AbstractEventLoop | None
    _closed: bool
    _blocking: bool

    def _setup(
        self,
        sock: socket.socket | None,
        keyfile: str | None,
        certfile: str | None,
        ssl_version: SSLVersion,
        cafile: str | None,
    ) -> None:
        if sock is None:  # a placeholder until `create_connection` makes the real one
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock = sock
        timeout = sock.gettimeout()
        self._timeout = None if timeout == 0.0 else timeout
        if ssl_version is None:
            ssl_version = type(self)._default_ssl_version
        self._tls = TLSSettings(certfile, keyfile, cafile, pinned_version(ssl_version))
        self._waits = {}
        self._loop = None
        self._closed = False
        self._blocking = False

    # -- the protocol version for TLS (the later release's class methods) ----------------

    @classmethod
    def get_ssl_version(cls) -> SSLVersion:
        """The TLS protocol used when a socket is made without ``ssl_version``."""
        return cls._default_ssl_version

    @classmethod
    def set_ssl_version(cls, version: SSLVersion) -> None:
        pinned_version(version)  # rejects what cannot be used
        cls._default_ssl_version = version

    # -- timeouts ---------------------------------------------------------------------------

    def settimeout(self, timeout: float | None) -> None:
        """Idle timeout of each operation, in seconds (None: none). Unlike the original,
        ``settimeout(None)`` does not switch an asynchronous socket to blocking mode."""
        if timeout is not None:
            timeout = float(timeout)
            if timeout < 0:
                raise ValueError("a timeout cannot be negative")
        self._timeout = timeout
        if self._blocking:  # the raw socket applies it
            self._sock.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._timeout

    @staticmethod
    def setdefaulttimeout(timeout: float | None) -> None:
        """The timeout sockets made from now on start with (`socket.setdefaulttimeout`)."""
        socket.setdefaulttimeout(timeout)

    @staticmethod
    def getdefaulttimeout() -> float | None:
        return socket.getdefaulttimeout()

    # -- TLS ----------------------------------------------------------------------------------

    def _wrap(self, server_side: bool, handshake_now: bool) -> ssl.SSLSocket:
        """Replace the raw socket by its TLS wrapping (handshake now or by the caller)."""
        context = self._tls.context(server_side)
        tls = context.wrap_socket(
            self._sock, server_side=server_side, do_handshake_on_connect=handshake_now
        )
        self._sock = tls
        return tls

    # -- the end --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the socket; a coroutine waiting on it gets an OSError (EBADF). Safe from
        any thread (with waits in progress the closing happens on the loop's thread)."""
        if self._closed:
            return
        self._closed = True
        loop = self._loop
        if self._waits and loop is not None and _current_loop() is not loop:
            try:
                loop.call_soon_threadsafe(self._close_now)
                return
            except RuntimeError:  # that loop is closed: nothing is registered any more
                pass
        self._close_now()

    def _close_now(self) -> None:
        self._forget_waits(closed_error())
        self._sock.close()

    def _forget_waits(self, error: OSError) -> None:
        waits, self._waits = self._waits, {}
        loop = self._loop
        if waits and loop is not None and not loop.is_closed():
            fd = self._sock.fileno()
            if fd >= 0:
                loop.remove_reader(fd)
                loop.remove_writer(fd)
        for wait in waits:
            if not wait.done():
                wait.set_exception(error)

    def unwrap(self) -> socket.socket:
        """The raw socket (a TLS one if TLS is on), in blocking mode with this socket's
        timeout; this object is done with it."""
        if self._closed:
            raise closed_error()
        self._closed = True
        self._forget_waits(OSError(errno.EBADF, "the socket was unwrapped"))
        self._sock.settimeout(self._timeout)
        return self._sock

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- everything else is the raw socket's --------------------------------------------

    def __getattr__(self, name: str) -> object:
        if name == "_sock":  # not set yet: never recurse
            raise AttributeError(name)
        return getattr(self._sock, name)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"fd={self._sock.fileno()}"
        mode = "blocking" if self._blocking else "async"
        tls = ", tls" if isinstance(self._sock, ssl.SSLSocket) else ""
        return f"<{type(self).__name__} {mode}{tls} {state}>"
