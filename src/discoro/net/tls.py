"""TLS contexts for peer connections (``ssl.SSLContext``; works on Python 3.11 to 3.14).

With ``certfile`` (and ``keyfile``, unless the key is in the certificate file) every
connection is TLS, both ways, with that certificate. Without ``cafile`` peers' certificates
are not verified (the cluster secret still authenticates them, as in the original, whose
TLS never verified); with ``cafile`` each side requires the other's certificate to be
signed by that CA, so a process without such a certificate cannot even start the
discoro handshake. Peers are addressed by IP, so host names are not checked.

Invariants:
- TLS 1.2 is the oldest version accepted.
- Options that only make sense with a certificate (``keyfile``, ``cafile``) are refused
  without one (ValueError) instead of being silently ignored: a ``cafile`` alone would
  otherwise suggest verification that does not happen.
- Files are read when the contexts are made, so a missing or bad file fails at start-up
  with the ssl module's own error, not at the first connection.
"""

from __future__ import annotations

import ssl

__all__ = ["client_context", "contexts", "server_context"]


def _base(purpose: ssl._SSLMethod, certfile: str, keyfile: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(purpose)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    return context


def server_context(certfile: str, keyfile: str | None, cafile: str | None) -> ssl.SSLContext:
    """The context the listening side uses: client certificates are required (and
    verified) only when ``cafile`` is given."""
    context = _base(ssl.PROTOCOL_TLS_SERVER, certfile, keyfile)
    if cafile:
        context.load_verify_locations(cafile)
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.verify_mode = ssl.CERT_NONE
    return context


def client_context(certfile: str, keyfile: str | None, cafile: str | None) -> ssl.SSLContext:
    """The context the dialling side uses: it presents the same certificate and verifies
    the server's only when ``cafile`` is given."""
    context = _base(ssl.PROTOCOL_TLS_CLIENT, certfile, keyfile)
    context.check_hostname = False  # before verify_mode: peers are known by IP address
    if cafile:
        context.load_verify_locations(cafile)
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.verify_mode = ssl.CERT_NONE
    return context


def contexts(
    certfile: str | None, keyfile: str | None, cafile: str | None
) -> tuple[ssl.SSLContext | None, ssl.SSLContext | None]:
    """(server context, client context), or (None, None) for plain TCP."""
    if not certfile:
        given = [name for name, value in (("keyfile", keyfile), ("cafile", cafile)) if value]
        if given:
            raise ValueError(f"{' and '.join(given)} given without certfile: TLS needs a certfile")
        return None, None
    return server_context(certfile, keyfile, cafile), client_context(certfile, keyfile, cafile)
