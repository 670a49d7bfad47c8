"""TLS settings of an `AsyncSocket` (reference 1.11): which `ssl.SSLContext` a side uses.

The original wrapped sockets with ``ssl.wrap_socket`` (gone since Python 3.12) and never
verified the peer. Here a `TLSSettings` names the certificate, its key, an optional CA and
the protocol, and builds one context per side:

- with no ``cafile`` the peer's certificate is not verified (the original's behaviour);
- with a ``cafile`` the peer must present a certificate that CA signed (a server then asks
  clients for one). Host names are not checked: a socket is connected to an address, and
  the original had no notion of the peer's name.

``ssl_version`` is ``None`` or ``ssl.PROTOCOL_TLS``/``PROTOCOL_SSLv23`` for the best
protocol both sides speak, or a pinned ``PROTOCOL_TLSv1*`` / `ssl.TLSVersion`, mapped onto
the context's minimum and maximum version (the old per-protocol contexts are deprecated).
Contexts are cached per settings: loading a certificate for every accepted connection costs.
"""

from __future__ import annotations

import functools
import ssl
from dataclasses import dataclass

SSLVersion = ssl.TLSVersion | ssl._SSLMethod | int | None

_BEST = {"PROTOCOL_TLS", "PROTOCOL_SSLv23", "PROTOCOL_TLS_CLIENT", "PROTOCOL_TLS_SERVER"}


def pinned_version(ssl_version: SSLVersion) -> ssl.TLSVersion | None:
    """The one TLS version ``ssl_version`` pins, or None for the best available."""
    if ssl_version is None:
        return None
    if isinstance(ssl_version, ssl.TLSVersion):
        return ssl_version
    name = getattr(ssl_version, "name", None)
    if name is None:  # a plain int: one of ssl's protocol numbers
        try:
            name = ssl._SSLMethod(ssl_version).name
        except ValueError:
            raise ValueError(f"unknown ssl_version {ssl_version!r}") from None
    if name in _BEST:
        return None
    if name.startswith("PROTOCOL_TLSv1"):
        return ssl.TLSVersion[name.removeprefix("PROTOCOL_")]
    raise ValueError(f"ssl_version {name} is not supported (use a TLS version)")


@dataclass(frozen=True)
class TLSSettings:
    """What an `AsyncSocket` needs to speak TLS: a ``certfile`` (the original's switch), or
    on a client a ``cafile`` alone (verify the server, present no certificate)."""

    certfile: str | None = None
    keyfile: str | None = None
    cafile: str | None = None
    version: ssl.TLSVersion | None = None

    @property
    def enabled(self) -> bool:
        return self.certfile is not None or self.cafile is not None

    def context(self, server_side: bool) -> ssl.SSLContext:
        return _context(self, server_side)


@functools.lru_cache(maxsize=32)
def _context(settings: TLSSettings, server_side: bool) -> ssl.SSLContext:
    protocol = ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT
    context = ssl.SSLContext(protocol)
    if settings.version is not None:
        context.minimum_version = settings.version
        context.maximum_version = settings.version
    if not server_side:
        context.check_hostname = False
    if settings.cafile is None:
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_verify_locations(cafile=settings.cafile)
        context.verify_mode = ssl.CERT_REQUIRED
    if settings.certfile is not None:
        context.load_cert_chain(settings.certfile, settings.keyfile)
    return context
