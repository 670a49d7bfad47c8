"""Access control for the status page: who may read it, and who may change anything.

Rules, on loopback too (a page of any other origin on this machine, or a DNS-rebinding page,
reaches loopback as easily as the user does):
- Host: a request whose ``Host`` is not a name or address the page is served on (see
  `allowed_hosts`) gets 403, so a DNS-rebinding page (whose Host is the attacker's name) gets
  nothing.
- Origin: a request that names another origin (``Origin`` other than ``http://`` + its Host,
  or ``Sec-Fetch-Site`` other than same-origin / none) gets 403: no cross-origin reads or
  writes, whatever the method.
- Changes (any method but GET/HEAD): they need the header `CSRF_HEADER` carrying the page's
  CSRF token, which only a same-origin page can read (``GET /api/session``), and a JSON body
  (``Content-Type: application/json``, else 415), which a cross-site form cannot send.
- Token: bound beyond loopback (or when asked), every request must also carry the access
  token, as ``?token=...`` (the URL printed at start, as Jupyter does) or as the cookie that
  the first such visit sets. The token is derived from the cluster secret through the key
  schedule (`wire.keys`: scrypt, then HKDF with its own label), so anyone who knows the secret
  can compute it, nobody else can, and a leaked URL does not help to guess the secret.
Tokens are compared with `hmac.compare_digest`.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING

from aiohttp import web

from discoro.wire.keys import derive, stretch

if TYPE_CHECKING:
    from aiohttp.typedefs import Middleware

COOKIE = "discoro_token"
CSRF_HEADER = "X-Discoro-CSRF"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_SAME_SITE = frozenset({"same-origin", "none"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def access_token(secret: bytes | str) -> str:
    """The page's token for ``secret``: 32 hex characters of a key derived for the page."""
    key = secret.encode() if isinstance(secret, str) else secret
    master = stretch(key) if key else bytes(32)  # an empty secret: a public token (warned)
    return derive(master, "status page token").hex()[:32]


def is_loopback(host: str) -> bool:
    """True if binding to ``host`` keeps the page on this machine ("" means every address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str) -> frozenset[str]:
    """The names and addresses a browser may use to reach a page bound to ``host`` (what
    its ``Host`` header may say, port aside), lower case."""
    names: set[str] = set()
    if host in ("", "0.0.0.0", "::"):
        names |= LOOPBACK_NAMES
        names |= {socket.gethostname(), socket.getfqdn()}
        try:
            import psutil

            for addresses in psutil.net_if_addrs().values():
                names |= {a.address.split("%")[0] for a in addresses if a.family in _INET}
        except (ImportError, OSError):  # pragma: no cover - psutil is a dependency
            pass
    else:
        names.add(host)
        if is_loopback(host):
            names |= LOOPBACK_NAMES
        if not _is_address(host):
            with contextlib.suppress(OSError):
                names.add(socket.gethostbyname(host))
    return frozenset(name.lower() for name in names if name)


_INET = (socket.AF_INET, socket.AF_INET6)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _host_name(host_header: str) -> str:
    """The name or address in a ``Host`` header, without port or IPv6 brackets."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else ""
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def guard_middleware(hosts: Iterable[str], csrf: str, scheme: str = "http") -> Middleware:
    """An aiohttp middleware applying the Host, Origin and CSRF rules (module docstring);
    ``scheme``: "https" for a page served over TLS (its pages' origin)."""
    allowed = frozenset(h.lower() for h in hosts)

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        host = request.headers.get("Host", "")
        if _host_name(host) not in allowed:
            raise web.HTTPForbidden(text="discoro: this page is not served under that name\n")
        origin = request.headers.get("Origin")
        if origin is not None and origin != f"{scheme}://{host}":
            raise web.HTTPForbidden(text="discoro: cross-origin requests are refused\n")
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and site not in _SAME_SITE:
            raise web.HTTPForbidden(text="discoro: cross-site requests are refused\n")
        if request.method not in _SAFE_METHODS:
            given = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(given.encode(), csrf.encode()):
                raise web.HTTPForbidden(text=f"discoro: {CSRF_HEADER} is missing or wrong\n")
            if request.content_type != "application/json":
                raise web.HTTPUnsupportedMediaType(text="discoro: send application/json\n")
        response = await handler(request)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    return guard


def token_middleware(token: str) -> Middleware:
    """An aiohttp middleware that lets through only requests carrying ``token``."""

    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.query.get("token")
        from_query = given is not None
        if given is None:
            given = request.cookies.get(COOKIE)
        if given is None or not hmac.compare_digest(given.encode(), token.encode()):
            raise web.HTTPForbidden(text="discoro: a valid ?token= is needed for this page\n")
        response = await handler(request)
        if from_query:
            response.set_cookie(COOKIE, token, httponly=True, samesite="Strict")
        return response

    return check_token
