"""The status page in a real browser: headless chromium renders the cluster page (its script
fills the node table from the API) and, driven over the DevTools protocol, ticks a coroutine
on the process page and presses "Terminate selected"; the client then gets the remote
coroutine's `MonitorException`."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest

from procs import free_port
from webcluster import web_cluster

if TYPE_CHECKING:
    from collections.abc import Iterator

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not os.path.exists(CHROMIUM) and os.geteuid() != 0:
    pytest.skip("chromium is not installed (CI installs it)", allow_module_level=True)
pytestmark = pytest.mark.timeout(40)


@pytest.fixture
def profile() -> Iterator[str]:
    directory = tempfile.mkdtemp(prefix="discoro-chromium-")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_cluster_page_shows_the_node(udp_port: int, cluster_secret: str, profile: str) -> None:
    with web_cluster(udp_port) as web:
        dom = subprocess.run(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={profile}",
                "--virtual-time-budget=3000",
                "--dump-dom",
                web.base + "/",
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        assert f'<tr data-addr="{web.node_addr}">' in dom
        assert f'href="/node?addr={web.node_addr}"' in dom
        assert "1 nodes, 1 processes" in dom
        assert re.search(r"computation of python -c \(pid \d+\) at [\d.:]+, started ", dom)


async def evaluate(ws: aiohttp.ClientWebSocketResponse, ids: Iterator[int], expr: str) -> Any:
    """Run ``expr`` in the page (CDP Runtime.evaluate); its value."""
    number = next(ids)
    await ws.send_json(
        {
            "id": number,
            "method": "Runtime.evaluate",
            "params": {"expression": expr, "returnByValue": True},
        }
    )
    while True:
        reply = json.loads((await ws.receive()).data)
        if reply.get("id") == number:
            return reply["result"]["result"].get("value")


async def poll(ws: aiohttp.ClientWebSocketResponse, ids: Iterator[int], expr: str) -> Any:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        value = await evaluate(ws, ids, expr)
        if value:
            return value
        await asyncio.sleep(0.1)
    raise AssertionError(f"never true in the page: {expr}")


async def devtools_page(session: aiohttp.ClientSession, debug_port: int) -> dict[str, Any]:
    """The page target of the chromium listening for DevTools on ``debug_port``, once it is up."""
    deadline = time.monotonic() + 15
    while True:
        try:
            async with session.get(f"http://127.0.0.1:{debug_port}/json/list") as reply:
                targets = await reply.json()
            page = next((t for t in targets if t.get("type") == "page"), None)
        except aiohttp.ClientError:
            page = None
        if page is not None:
            return dict(page)
        assert time.monotonic() < deadline, "chromium's DevTools did not come up"
        await asyncio.sleep(0.1)


async def terminate_in_browser(debug_port: int, coro: str) -> str:
    async with aiohttp.ClientSession() as session:
        page = await devtools_page(session, debug_port)
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ids = iter(range(1, 1_000_000))
            selector = json.dumps(f'input.select[value="{coro}"]')
            await poll(ws, ids, f"!!document.querySelector({selector})")
            await evaluate(ws, ids, f"document.querySelector({selector}).click()")
            await evaluate(ws, ids, "document.getElementById('terminate').click()")
            text = "document.getElementById('message').textContent"
            return str(await poll(ws, ids, f"{text}.startsWith('terminated') && {text}"))


def test_process_page_terminates_a_coroutine(
    udp_port: int, cluster_secret: str, profile: str
) -> None:
    with web_cluster(udp_port) as web:
        [running] = web.get(f"/api/proc/{web.proc}")["coros"]
        debug_port = free_port()
        url = web.base + "/process?location=" + urllib.parse.quote(web.proc)
        browser = subprocess.Popen(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--remote-debugging-port={debug_port}",
                "--remote-debugging-address=127.0.0.1",
                url,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            message = asyncio.run(terminate_in_browser(debug_port, running["coro"]))
        finally:
            browser.terminate()
            try:
                browser.wait(10)
            except subprocess.TimeoutExpired:
                browser.kill()
                browser.wait(5)
        assert message == f"terminated: {running['coro']}"
        web.child.expect(r"^MONITOR sleeper/", timeout=10)
        web.child.expect(r"^CLIENT DONE", timeout=10)
