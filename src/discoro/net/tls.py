"""TLS contexts for peer connections (``ssl.SSLContext``; works on Python 3.11 to 3.14).

With ``certfile`` (and ``keyfile``) every connection is TLS, both ways, with that certificate.
Without ``cafile`` peers' certificates are not verified (the cluster secret still
authenticates them); with ``cafile`` each side requires the other's certificate to be signed
by that CA. Peers are addressed by IP, so host names are not checked.
"""

from __future__ import annotations

import ssl


def server_context(certfile: str, keyfile: str | None, cafile: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile)
    if cafile:
        context.load_verify_locations(cafile)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(certfile: str, keyfile: str | None, cafile: str | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = False
    context.load_cert_chain(certfile, keyfile)
    if cafile:
        context.load_verify_locations(cafile)
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context.verify_mode = ssl.CERT_NONE
    return context
