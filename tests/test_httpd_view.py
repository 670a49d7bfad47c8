"""The web monitor without a cluster: its two signatures, its view of the cluster fed message by
message (the rules of `discoro.web._monitor`), and an `HTTPServer` in this process fed through
its ``status_coro``, read over HTTP and shut down."""

from __future__ import annotations

import http.client
import json
import shutil
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

import discoro
from discoro.cluster.status import CoroInfo, Status, StatusMessage
from discoro.errors import MonitorException
from discoro.net.location import Location
from discoro.web._app import STATIC
from discoro.web._httpserver import _options
from discoro.web._monitor import ClusterView
from discoro.web._monitor_json import node_info, page_snapshot, server_info

pytestmark = pytest.mark.timeout(120)  # generous: the page answers slowly under load


class Handle:
    """Stands for a remote coroutine: a name and a location."""

    def __init__(self, name: str, location: Location) -> None:
        self.name, self.location = name, location

    def __str__(self) -> str:
        return f"{self.name}@{self.location}"


class NodeInfo(str):
    """What the later release sends as a Node* info: the address, with attributes."""

    name = "worker-1"
    avail_info = None


class Avail:
    def __init__(self, location: Location, cpu: float) -> None:
        self.location, self.cpu, self.memory, self.disk, self.swap = location, cpu, 10, 20, 90.0


# -- signatures ---------------------------------------------------------------------------


def test_later_signature_positional_and_keywords() -> None:
    settings = _options(object(), ("10.0.0.1", 8000, 5), {"show_coro_args": False})
    assert (settings.host, settings.port, settings.poll_sec) == ("10.0.0.1", 8000, 5)
    assert settings.show_coro_args is False
    default = _options(None, (), {})
    assert (default.host, default.port, default.poll_sec) == ("127.0.0.1", 8181, 10)
    assert default.document_root == STATIC and default.show_coro_args is True


def test_seed_signature_shifts_after_the_host() -> None:
    settings = _options("", (8000, 3, "/docs", "k.pem", "c.pem"), {})
    assert settings.host == ""  # given: every address
    assert (settings.port, settings.poll_sec, settings.document_root) == (8000, 3, Path("/docs"))
    assert (settings.keyfile, settings.certfile) == ("k.pem", "c.pem")
    assert _options("127.0.0.1", (), {"port": 9000}).port == 9000


@pytest.mark.parametrize(
    ("first", "args", "kwargs", "error"),
    [
        ("h", (1, 2, 3, 4, 5, 6), {}, TypeError),  # the seed had six parameters
        ("h", (8000,), {"port": 9000}, TypeError),
        (None, (), {"colour": "red"}, TypeError),
        (None, (), {"poll_sec": 0}, ValueError),
        (None, ("h", "8181"), {}, ValueError),
        (None, (), {"host": 1}, TypeError),
        (None, (), {"keyfile": 3}, TypeError),
    ],
)
def test_misuse_is_refused(first: Any, args: tuple[Any, ...], kwargs: Any, error: Any) -> None:
    with pytest.raises(error):
        _options(first, args, kwargs)


# -- the view -----------------------------------------------------------------------------

A = Location("10.0.0.5", 4001)
B = Location("10.0.0.5", 4002)


def fed(*messages: Any) -> ClusterView:
    view = ClusterView()
    for message in messages:
        view.handle(message)
    return view


def created(handle: Handle, *args: Any, **kwargs: Any) -> StatusMessage:
    return StatusMessage(Status.CoroCreated, CoroInfo(handle, args, kwargs, time.time()))


def ended(handle: Handle) -> MonitorException:
    return MonitorException(handle, (StopIteration, None))


def test_seed_messages_make_nodes_servers_and_counts() -> None:
    one, two = Handle("job/1", A), Handle("job/2", B)
    view = fed(
        StatusMessage(Status.NodeDiscovered, "10.0.0.5"),  # no record before it serves
        StatusMessage(Status.NodeInitialized, "10.0.0.5"),
        StatusMessage(Status.ProcInitialized, A),
        StatusMessage(Status.ProcInitialized, B),
        created(one, 1, key="v"),
        created(two, 2),
        ended(one),
    )
    [node] = view.nodes.values()
    info = node_info(node)
    assert info["ip_addr"] == info["addr"] == info["name"] == "10.0.0.5"
    assert info["procs"] == 2
    assert (info["coros_submitted"], info["coros_done"], info["coros_running"]) == (2, 1, 1)
    assert [s["location"] for s in info["servers"]] == [str(A), str(B)]
    server = server_info(node.servers[str(B)], 10, show_args=True)
    [coro] = server["coros"]
    assert (coro["coro"], coro["name"], coro["args"]) == ("job/2@10.0.0.5:4002", "job", "2")
    assert server_info(node.servers[str(A)], 10, show_args=True)["coros"] == []
    assert view.running(["job/2@10.0.0.5:4002", "job/1@10.0.0.5:4001"]) == [two]
    assert view.handle(ended(one)) is False  # counted once


def test_closing_codes_keep_servers_with_a_status_word() -> None:
    view = fed(
        StatusMessage(Status.ServerInitialized, A),  # no NodeInitialized: made lazily
        StatusMessage(Status.ServerInitialized, B),
        StatusMessage(Status.ServerDisconnected, B),
        StatusMessage(Status.ServerClosed, A),
        StatusMessage(Status.NodeClosed, NodeInfo("10.0.0.5")),
    )
    node = view.nodes["10.0.0.5"]
    assert node.status == "Closed" and node.active_servers() == 0
    states = {s.location: s.status for s in node.servers.values()}
    assert states == {str(A): "Closed", str(B): "Disconnected"}
    assert fed(StatusMessage(Status.ServerClosed, A)).nodes == {}  # unknown: nothing to show


def test_later_messages_node_info_and_availability() -> None:
    view = fed(
        StatusMessage(Status.NodeInitialized, NodeInfo("10.0.0.5")),
        StatusMessage(Status.ServerInitialized, A),
    )
    assert view.nodes["10.0.0.5"].name == "worker-1"
    assert view.handle(Avail(A, 75.0)) is True
    assert view.nodes["10.0.0.5"].avail == {"cpu": 75.0, "memory": 10, "disk": 20, "swap": 90.0}
    page = page_snapshot(view, 4, show_args=False)
    assert page["nodes"][0]["cpu"] == 25.0 and page["poll_sec"] == 4  # the page shows use
    assert view.handle(Avail(Location("10.9.9.9", 1), 5.0)) is False
    assert view.handle("something else") is False


def test_updates_report_each_change_once() -> None:
    view = fed(StatusMessage(Status.ServerInitialized, A))
    assert [n.addr for n in view.take_changed()] == ["10.0.0.5"]
    assert view.take_changed() == []
    view.handle(created(Handle("job/3", A)))
    assert [n.addr for n in view.take_changed()] == ["10.0.0.5"]


# -- a monitor in this process ------------------------------------------------------------


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def test_monitor_in_process_serves_what_it_is_told_and_shuts_down(
    net_kernel: discoro.AsynCoro,
) -> None:
    monitor = discoro.httpd.HTTPServer(port=0, poll_sec=1)
    assert monitor.url == f"http://127.0.0.1:{monitor.port}/"
    base = monitor.url.rstrip("/")
    for message in (StatusMessage(Status.ProcInitialized, A), created(Handle("job/9", A), 9)):
        assert monitor.status_coro.send(message) == 0
    deadline = time.monotonic() + 30
    while not (nodes := get(base + "/cluster_status")) or nodes[0]["coros_running"] != 1:
        assert time.monotonic() < deadline, nodes
        time.sleep(0.05)
    assert nodes[0]["addr"] == "10.0.0.5"
    assert get(base + "/api/status")["procs"][0]["coros"][0]["coro"] == "job/9@10.0.0.5:4001"
    monitor.shutdown(wait=False)
    with pytest.raises(urllib.error.URLError):
        get(base + "/cluster_status")


def test_monitor_over_tls(net_kernel: discoro.AsynCoro, tmp_path: Any) -> None:
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    monitor = discoro.httpd.HTTPServer(None, "127.0.0.1", 0, 1, None, str(key), str(cert))
    try:
        assert monitor.url == f"https://127.0.0.1:{monitor.port}/"
        context = ssl.create_default_context(cafile=str(cert))
        base = monitor.url.rstrip("/")

        def call(path: str, body: Any = None, origin: str = base) -> Any:
            headers = {"Content-Type": "application/json", "Origin": origin}
            data = None
            if body is not None:
                data = json.dumps(body).encode()
                headers["X-Discoro-CSRF"] = call("/api/session")["csrf"]
            request = urllib.request.Request(base + path, data=data, headers=headers)
            with urllib.request.urlopen(request, timeout=30, context=context) as response:
                return json.load(response)

        assert call("/cluster_status") == []
        assert call("/set_poll_sec", {"timeout": 2}) == {"poll_sec": 2}
        with pytest.raises(urllib.error.HTTPError) as refused:
            call("/cluster_status", origin=base.replace("https:", "http:"))
        refused.value.close()
        assert refused.value.code == 403
    finally:
        monitor.shutdown(wait=False)


def test_document_root_serves_the_users_pages(net_kernel: discoro.AsynCoro, tmp_path: Any) -> None:
    (tmp_path / "cluster.html").write_text("<p>my own cluster page</p>")
    monitor = discoro.httpd.HTTPServer(port=0, poll_sec=1, DocumentRoot=str(tmp_path))
    try:
        base = monitor.url.rstrip("/") if monitor.url else ""
        for path in ("/", "/cluster.html"):
            with urllib.request.urlopen(base + path, timeout=30) as response:
                assert response.read() == b"<p>my own cluster page</p>"
        assert get(base + "/cluster_status") == []
    finally:
        monitor.shutdown(wait=False)


def test_a_wrong_first_argument_is_refused() -> None:
    with pytest.raises(TypeError, match="Computation or a host"):
        discoro.httpd.HTTPServer(8181)


def test_the_module_path_of_the_original() -> None:
    import discoro as asyncoro
    import discoro.httpd
    from discoro.web._httpserver import HTTPServer

    assert asyncoro.httpd is discoro.httpd and asyncoro.httpd.HTTPServer is HTTPServer


def test_shutdown_from_a_coroutine_stops_after_one_poll(net_kernel: discoro.AsynCoro) -> None:
    monitor = discoro.httpd.HTTPServer(port=0, poll_sec=1)
    base = monitor.url.rstrip("/") if monitor.url else ""

    def stopper(coro: Any = None) -> Any:
        monitor.shutdown(wait=True)  # on the loop thread: must not block it
        yield coro.sleep(0)
        return "returned"

    assert discoro.Coro(stopper).value(30) == "returned"
    deadline = time.monotonic() + 30
    while True:
        try:
            get(base + "/cluster_status")
        except (OSError, http.client.HTTPException):
            break  # refused, or a request the stop cut short (the listener closes first)
        assert time.monotonic() < deadline, "the monitor did not stop"
        time.sleep(0.05)
    with pytest.raises(urllib.error.URLError):  # stopped: nothing listens any more
        get(base + "/cluster_status")


def job(coro: Any = None) -> Any:
    yield coro.sleep(0)


def test_hooking_into_a_computation(net_kernel: discoro.AsynCoro) -> None:
    bare = discoro.Computation([job])
    monitor = discoro.httpd.HTTPServer(bare, port=0)
    try:
        assert bare.status_coro is monitor.status_coro  # none of its own: the monitor's
    finally:
        monitor.shutdown(wait=False)

    def user_status(coro: Any = None) -> Any:
        coro.set_daemon()
        while True:
            yield coro.receive()

    user = discoro.Coro(user_status)
    owned = discoro.Computation([job], status_coro=user)
    with socket.socket() as taken:  # a port in use: the monitor fails before hooking in
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(OSError, match="in use"):
            discoro.httpd.HTTPServer(owned, port=taken.getsockname()[1])
    assert owned.status_coro is user
    monitor = discoro.httpd.HTTPServer(owned, port=0)
    try:
        relay = owned.status_coro
        assert relay is not user and relay is not monitor.status_coro  # a relay to both
    finally:
        monitor.shutdown(wait=False)
