"""The status page refuses what a page of another origin, or a DNS-rebinding page, could send
(issue 8): a foreign Host, a foreign Origin or Sec-Fetch-Site, a change without the CSRF
token or without a JSON body; and it accepts what its own page sends. On loopback, with no
access token, since that is where those attacks work. A real aiohttp server on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from discoro.web._app import build_app
from discoro.web._auth import CSRF_HEADER, allowed_hosts
from test_web import CORO, FakeScheduler

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

Check = "Callable[[TestClient[Any, Any], FakeScheduler], Awaitable[None]]"


def run(check: Callable[[TestClient[Any, Any], FakeScheduler], Awaitable[None]]) -> None:
    async def main() -> None:
        source = FakeScheduler()
        app = build_app(source, hosts=allowed_hosts("127.0.0.1"))
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await check(client, source)

    asyncio.run(main())


async def page_headers(client: TestClient[Any, Any]) -> dict[str, str]:
    """What the page's own terminate request carries (as chromium sends it)."""
    session = await client.get("/api/session", headers={"Sec-Fetch-Site": "same-origin"})
    assert session.status == 200
    return {
        CSRF_HEADER: (await session.json())["csrf"],
        "Content-Type": "application/json",
        "Origin": f"http://127.0.0.1:{client.port}",
        "Sec-Fetch-Site": "same-origin",
    }


def test_the_pages_own_requests_are_accepted() -> None:
    async def check(client: TestClient[Any, Any], source: FakeScheduler) -> None:
        headers = await page_headers(client)
        for path in ("/", "/api/status", "/static/app.js"):
            response = await client.get(path, headers={"Sec-Fetch-Site": "same-origin"})
            assert response.status == 200, path
            assert response.headers["X-Frame-Options"] == "DENY"
        # typed by hand into the address bar: no Origin, Sec-Fetch-Site "none"
        assert (await client.get("/", headers={"Sec-Fetch-Site": "none"})).status == 200
        for host in ("localhost", "127.0.0.1"):
            response = await client.get("/api/status", headers={"Host": f"{host}:{client.port}"})
            assert response.status == 200, host
        response = await client.post("/api/terminate", json={"coros": [CORO]}, headers=headers)
        assert response.status == 200 and await response.json() == {"terminated": [CORO]}
        assert source.terminated == [[CORO]]

    run(check)


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",  # DNS rebinding: the attacker's name now resolves to 127.0.0.1
        "evil.example:{port}",
        "127.0.0.1.evil.example:{port}",
        "",
    ],
)
def test_a_foreign_host_is_refused(host: str) -> None:
    async def check(client: TestClient[Any, Any], source: FakeScheduler) -> None:
        headers = await page_headers(client)
        headers["Host"] = host.format(port=client.port)
        headers.pop("Origin")  # a rebinding page is same-origin with itself
        response = await client.get("/api/status", headers={"Host": headers["Host"]})
        assert response.status == 403
        assert "not served under that name" in await response.text()
        response = await client.post("/api/terminate", json={"coros": [CORO]}, headers=headers)
        assert response.status == 403
        assert source.terminated == []

    run(check)


@pytest.mark.parametrize(
    "changes",
    [
        {"Origin": "http://127.0.0.1:1"},  # another port of this machine: another origin
        {"Origin": "http://localhost:{port}"},  # same server, another origin
        {"Origin": "https://127.0.0.1:{port}"},
        {"Origin": "null"},  # a sandboxed frame or a file:// page
        {"Origin": "http://evil.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # another port of the same host
    ],
)
def test_a_foreign_origin_is_refused(changes: dict[str, str]) -> None:
    async def check(client: TestClient[Any, Any], source: FakeScheduler) -> None:
        headers = await page_headers(client)
        foreign = {name: value.format(port=client.port) for name, value in changes.items()}
        headers.update(foreign)
        response = await client.post("/api/terminate", json={"coros": [CORO]}, headers=headers)
        assert response.status == 403
        assert (await client.get("/api/status", headers=foreign)).status == 403
        assert (await client.get("/api/session", headers=foreign)).status == 403
        assert source.terminated == []

    run(check)


def test_a_change_without_the_csrf_token_is_refused() -> None:
    async def check(client: TestClient[Any, Any], source: FakeScheduler) -> None:
        headers = await page_headers(client)
        for token in (None, "", "0" * 43, headers[CSRF_HEADER][:-1]):
            changed = dict(headers)
            if token is None:
                del changed[CSRF_HEADER]
            else:
                changed[CSRF_HEADER] = token
            response = await client.post("/api/terminate", json={"coros": [CORO]}, headers=changed)
            assert response.status == 403, token
            assert CSRF_HEADER in await response.text()
        # a form post (what a cross-site page can send without asking): refused too
        response = await client.post("/api/terminate", data={"coros": CORO})
        assert response.status == 403
        assert source.terminated == []

    run(check)


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None],
)
def test_a_change_with_a_non_json_body_is_refused(content_type: str | None) -> None:
    async def check(client: TestClient[Any, Any], source: FakeScheduler) -> None:
        headers = await page_headers(client)
        if content_type is None:
            del headers["Content-Type"]
        else:
            headers["Content-Type"] = content_type
        body = b'{"coros": ["' + CORO.encode() + b'"]}'
        response = await client.post("/api/terminate", data=body, headers=headers)
        assert response.status == 415
        assert source.terminated == []

    run(check)


def test_allowed_hosts() -> None:
    assert allowed_hosts("127.0.0.1") == {"127.0.0.1", "localhost", "::1"}
    assert allowed_hosts("10.1.2.3") == {"10.1.2.3"}
    everywhere = allowed_hosts("0.0.0.0")
    assert {"127.0.0.1", "localhost", socket.gethostname().lower()} <= everywhere
    assert "evil.example" not in everywhere
