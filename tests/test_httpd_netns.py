"""The web monitor bound beyond loopback, inside a network namespace of the test's own (a
private LAN address, `netns.Topology`): every request then needs the access token derived
from the cluster secret, which the printed URL carries. The program inside the namespace
requests its own page with and without the token."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from discoro.web._auth import access_token
from netns import Topology, netns_unavailable

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.netns, pytest.mark.timeout(60)]

PROGRAM = """
import sys, urllib.error, urllib.request
import discoro
from discoro import httpd

addr = sys.argv[1]
discoro.AsynCoro(node=addr, udp_port=51350)  # the namespace is private to the test
monitor = httpd.HTTPServer(host=addr, port=8181)
print("URL", monitor.url, flush=True)


def fetch(url, **headers):
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        error.close()
        return error.code


base = f"http://{addr}:8181"
token = monitor.url.split("?token=")[1]
print("NO_TOKEN", fetch(base + "/cluster_status"), flush=True)
print("WRONG_TOKEN", fetch(base + "/cluster_status?token=" + "0" * 32), flush=True)
print("TOKEN", fetch(base + "/cluster_status?token=" + token), flush=True)
print("OTHER_HOST", fetch(base + "/cluster_status?token=" + token, Host="evil.example"), flush=True)
monitor.shutdown(wait=False)
discoro.AsynCoro.instance().terminate()
"""


@pytest.fixture
def lan() -> Iterator[Topology]:
    why_not = netns_unavailable()
    if why_not is not None:
        pytest.skip(why_not)
    with Topology(1) as topology:
        yield topology


def test_beyond_loopback_the_monitor_needs_the_token(lan: Topology, cluster_secret: str) -> None:
    addr = lan.addresses[0]
    child = lan.spawn(0, PROGRAM, addr)
    match = child.expect(rf"^URL http://{addr.replace('.', '[.]')}:8181/\?token=(\w+)$", 30)
    assert match[1] == access_token(cluster_secret)
    child.expect(r"^NO_TOKEN 403$", 15)
    child.expect(r"^WRONG_TOKEN 403$", 15)
    child.expect(r"^TOKEN 200$", 15)
    child.expect(r"^OTHER_HOST 403$", 15)
    assert child.wait(15) == 0
