"""Access control for the status page: a token derived from the cluster secret.

Rules: on loopback the page is open (only local users can reach it). Bound beyond loopback,
every request must carry the token, either as ``?token=...`` (the URL printed at start, as
Jupyter does) or as the cookie that the first such visit sets; anything else gets 403. The
token is an HMAC of the secret, so anyone who knows the secret can compute it, nobody else can,
and the secret itself never appears in a URL. Tokens are compared with `hmac.compare_digest`.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from aiohttp.typedefs import Middleware

COOKIE = "discoro_token"
_PURPOSE = b"discoro status page"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def access_token(secret: bytes | str) -> str:
    """The page's token for ``secret``: 32 hex characters (HMAC-SHA256, truncated)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, _PURPOSE, hashlib.sha256).hexdigest()[:32]


def is_loopback(host: str) -> bool:
    """True if binding to ``host`` keeps the page on this machine ("" means every address)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
