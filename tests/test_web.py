"""The status page: the JSON API and token check against a fake scheduler (no cluster), then
the API against a real local cluster, including terminating a running remote coroutine."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from discoro.web._app import build_app
from discoro.web._auth import CSRF_HEADER, access_token, is_loopback
from discoro.wire.keys import derive, stretch
from procs import PeerProcess
from webcluster import web_cluster

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

CORO = "sleeper/7@127.0.0.1:9001"


class FakeScheduler:
    """A status source with one node, one process and one running coroutine."""

    def __init__(self) -> None:
        self.terminated: list[list[str]] = []

    def status(self) -> dict[str, Any]:
        now = time.time()
        coros = [{"coro": CORO, "name": "sleeper", "args": "(60,)", "start_time": now}]
        proc = {
            "location": "127.0.0.1:9001",
            "node": "127.0.0.1",
            "name": "node-1",
            "state": "running",
            "submitted": 1,
            "done": 0,
            "running": 1,
            "updated": now,
            "coros": coros,
        }
        node = {
            "addr": "127.0.0.1",
            "name": "node",
            "procs": 1,
            "state": "ready",
            "cpu": 1.5,
            "memory": 20.0,
            "disk": 40.0,
            "swap": 0.0,
            "submitted": 1,
            "done": 0,
            "running": 1,
            "updated": now,
        }
        return {
            "scheduler": {
                "name": "discoro_scheduler",
                "location": "127.0.0.1:9000",
                "computation": "abc",
                "client": "127.0.0.1:9002",
                "queued": 0,
                "time": now,
            },
            "totals": {"nodes": 1, "procs": 1, "submitted": 1, "done": 0, "running": 1},
            "nodes": [node],
            "procs": [proc],
        }

    def terminate_coros(self, coros: list[str]) -> list[str]:
        self.terminated.append(coros)
        return [c for c in coros if c == CORO]


def with_client(
    test: Callable[[TestClient[Any, Any], FakeScheduler], Awaitable[None]],
    token: str | None = None,
) -> None:
    async def main() -> None:
        source = FakeScheduler()
        async with TestClient(TestServer(build_app(source, token), host="127.0.0.1")) as client:
            await test(client, source)

    asyncio.run(main())


def test_api_status_node_proc() -> None:
    async def check(client: TestClient[Any, Any], source: FakeScheduler) -> None:
        status = await (await client.get("/api/status")).json()
        assert status["totals"]["nodes"] == 1 and status["nodes"][0]["addr"] == "127.0.0.1"
        node = await (await client.get("/api/node/127.0.0.1")).json()
        assert node["node"]["name"] == "node" and len(node["procs"]) == 1
        proc = await (await client.get("/api/proc/127.0.0.1:9001")).json()
        assert proc["coros"][0]["coro"] == CORO
        assert (await client.get("/api/node/10.9.9.9")).status == 404
        assert (await client.get("/api/proc/127.0.0.1:1")).status == 404

    with_client(check)


async def csrf_headers(client: TestClient[Any, Any]) -> dict[str, str]:
    """The headers the page sends with a change (its CSRF token and a JSON body)."""
    session = await (await client.get("/api/session")).json()
    return {CSRF_HEADER: session["csrf"], "Content-Type": "application/json"}


def test_api_terminate_and_bad_bodies() -> None:
    async def check(client: TestClient[Any, Any], source: FakeScheduler) -> None:
        headers = await csrf_headers(client)
        body = {"coros": [CORO, "x/1@h:1"]}
        response = await client.post("/api/terminate", json=body, headers=headers)
        assert response.status == 200 and await response.json() == {"terminated": [CORO]}
        assert source.terminated == [[CORO, "x/1@h:1"]]
        for data in (b"not json", b'{"coros": "x"}', b'{"coros": [1]}', b"[]"):
            response = await client.post("/api/terminate", data=data, headers=headers)
            assert response.status == 400
        assert len(source.terminated) == 1

    with_client(check)


def test_pages_and_static_files_are_served() -> None:
    async def check(client: TestClient[Any, Any], source: FakeScheduler) -> None:
        for path, marker in (
            ("/", 'data-page="cluster"'),
            ("/node?addr=x", 'data-page="node"'),
            ("/process?location=x", 'data-page="process"'),
        ):
            response = await client.get(path)
            assert response.status == 200 and marker in await response.text()
        for path in ("/static/app.js", "/static/style.css"):
            assert (await client.get(path)).status == 200

    with_client(check)


def test_token_derivation() -> None:
    token = access_token(b"secret")
    assert len(token) == 32 and int(token, 16) >= 0
    assert token == derive(stretch(b"secret"), "status page token").hex()[:32]
    raw = hmac.new(b"secret", b"discoro status page", hashlib.sha256).hexdigest()[:32]
    assert token != raw  # never keyed by the raw secret
    assert token == access_token("secret") != access_token(b"other")
    assert "secret" not in token
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("") and not is_loopback("0.0.0.0") and not is_loopback("10.0.0.1")


def test_token_required_by_query_or_cookie() -> None:
    token = access_token(b"secret")

    async def check(client: TestClient[Any, Any], source: FakeScheduler) -> None:
        assert (await client.get("/api/status")).status == 403
        assert (await client.get("/api/status?token=" + "0" * 32)).status == 403
        assert (await client.get("/?token=wrong")).status == 403
        response = await client.post("/api/terminate", json={"coros": [CORO]})
        assert response.status == 403 and source.terminated == []
        response = await client.get("/?token=" + token)  # first visit: the cookie is set
        assert response.status == 200
        assert response.cookies["discoro_token"].value == token
        assert (await client.get("/api/status")).status == 200  # now by the cookie
        client.session.cookie_jar.clear()
        assert (await client.get("/api/status")).status == 403

    with_client(check, token=token)


@pytest.mark.timeout(40)
def test_api_against_a_real_cluster(udp_port: int, cluster_secret: str) -> None:
    with web_cluster(udp_port) as web:
        status = web.get("/api/status")
        assert [n["addr"] for n in status["nodes"]] == [web.node_addr]
        assert status["totals"]["running"] == 1
        node = web.get(f"/api/node/{web.node_addr}")
        assert [p["location"] for p in node["procs"]] == [web.proc]
        proc = web.get(f"/api/proc/{web.proc}")
        [running] = proc["coros"]
        assert running["coro"].startswith("sleeper/")
        with pytest.raises(urllib.error.HTTPError) as info:
            web.get("/api/proc/127.0.0.1:1")
        assert info.value.code == 404
        info.value.close()

        reply = web.post("/api/terminate", {"coros": [running["coro"]]})
        assert reply == {"terminated": [running["coro"]]}
        web.child.expect(r"^MONITOR sleeper/", timeout=10)
        web.child.expect(r"^CLIENT DONE", timeout=10)


def test_discoro_program_serves_the_page(udp_port: int, cluster_secret: str, tmp_path: Any) -> None:
    program = "import sys; from discoro.cli.scheduler import main; sys.exit(main(sys.argv[1:]))"
    args = ["-i", "127.0.0.1", "-u", str(udp_port), "--dest_path", str(tmp_path), "--http", "0"]
    with PeerProcess(program, *args) as child:
        url = child.expect(r"status page at (http://127\.0\.0\.1:\d+/)$", timeout=15)[1]
        with urllib.request.urlopen(url + "api/status", timeout=5) as response:
            status = json.load(response)
        assert status["scheduler"]["location"] and status["totals"]["nodes"] == 0
        child.write("quit")
        assert child.wait(15) == 0
