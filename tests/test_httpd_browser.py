"""The computation's web monitor (`discoro.httpd.HTTPServer`) in a real browser: headless
chromium renders the seed's page paths (``cluster.html``, ``node.html?host=``) from the
monitor's view of a real computation, and, driven over the DevTools protocol, ticks the long
coroutine on ``process.html`` and presses "Terminate selected"; the client's status coroutine
then gets the coroutine's `MonitorException` (relayed by the monitor)."""

from __future__ import annotations

import asyncio
import subprocess
import urllib.parse
from typing import TYPE_CHECKING

import aiohttp
import pytest

from discoro.cluster.local import LocalCluster, local_cluster
from procs import free_port
from test_httpd import monitored_client, poll
from test_web_browser import (
    CHROMIUM,
    FLAGS,
    devtools_page,
    evaluate,
    profile,
    terminate_in_browser,
)
from test_web_browser import poll as poll_page

if TYPE_CHECKING:
    from collections.abc import Iterator

__all__ = ["profile"]  # the fixture, shared with the status page's browser test
pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as running:
        yield running


def dump_dom(url: str, profile: str) -> str:
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=3000",
         "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout  # fmt: skip


async def change_poll_in_browser(debug_port: int, seconds: int) -> None:
    """Type ``seconds`` into the page's refresh field (as a user does: value, then change)."""
    async with aiohttp.ClientSession() as session:
        page = await devtools_page(session, debug_port)
        async with session.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            ids = iter(range(1, 1_000_000))
            await poll_page(ws, ids, "!!document.getElementById('poll-sec')")
            field = "document.getElementById('poll-sec')"
            await evaluate(
                ws, ids, f"{field}.value = '{seconds}'; {field}.dispatchEvent(new Event('change'))"
            )


def test_seed_pages_show_the_computation(
    cluster: LocalCluster, udp_port: int, profile: str
) -> None:
    addr = cluster.node_addr
    with monitored_client(udp_port, "later") as monitor:
        dom = dump_dom(monitor.base + "/cluster.html", profile)
        assert f'<tr data-addr="{addr}">' in dom
        assert "1 nodes, 2 processes; coroutines submitted 4, done 3, running 1" in dom
        dom = dump_dom(monitor.base + f"/node.html?host={addr}", profile)
        assert f'<tr data-location="{monitor.location}">' in dom
        query = urllib.parse.urlencode({"location": monitor.location})
        dom = dump_dom(monitor.base + "/process.html?" + query, profile)
        assert f'<tr data-coro="{monitor.rcoro}">' in dom
        monitor.post("/terminate_coros", {"coro": [monitor.rcoro]})
        monitor.child.expect(r"^CLOSED ", timeout=30)
        monitor.child.write("shut down")  # the page may go now
        monitor.child.expect(r"^SHUTDOWN$", timeout=40)
        monitor.child.write("exit")


def test_process_page_terminates_the_coroutine(
    cluster: LocalCluster, udp_port: int, profile: str
) -> None:
    with monitored_client(udp_port, "seed") as monitor:
        debug_port = free_port()
        url = (
            monitor.base + "/server.html?" + urllib.parse.urlencode({"location": monitor.location})
        )
        browser = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
             f"--remote-debugging-port={debug_port}", "--remote-debugging-address=127.0.0.1", url],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            asyncio.run(change_poll_in_browser(debug_port, 7))
            poll(lambda: monitor.get("/api/status")["poll_sec"] == 7)
            message = asyncio.run(terminate_in_browser(debug_port, monitor.rcoro))
        finally:
            browser.terminate()
            try:
                browser.wait(10)
            except subprocess.TimeoutExpired:
                browser.kill()
                browser.wait(5)
        assert message == f"terminated: {monitor.rcoro}"
        monitor.child.expect(rf"^USER MONITOR {monitor.rcoro}$", timeout=15)
        monitor.child.expect(r"^CLOSED ", timeout=30)
        monitor.child.write("shut down")  # the page may go now
        monitor.child.expect(r"^SHUTDOWN$", timeout=40)
        monitor.child.write("exit")
