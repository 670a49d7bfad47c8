"""AsyncSocket over TLS (reference 1.11, later-versions 7): handshakes on accept and connect
in both coroutine styles and in blocking mode, optional CA verification, pinned versions.

Throwaway certificates are made with the ``openssl`` command: a CA and a certificate it
signs for 127.0.0.1, and a rogue CA with a certificate of its own."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from discoro import AsyncSocket, Coro
from discoro.core.socket_tls import pinned_version

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.timeout(60)


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@dataclass
class Certificate:
    cert: str
    key: str
    ca: str  # the CA certificate that signed it


def make_certificate(folder: Path, name: str) -> Certificate:
    ca_key, ca_cert = folder / f"{name}-ca.key", folder / f"{name}-ca.pem"
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl(
        "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca_cert), "-days", "2",
        "-subj", f"/CN={name}-ca", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    openssl("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}")
    extensions = folder / f"{name}.ext"
    extensions.write_text("basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n")
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(extensions),
    )  # fmt: skip
    return Certificate(str(cert), str(key), str(ca_cert))


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Certificate]:
    folder = tmp_path_factory.mktemp("asyncsocket-tls")
    return {name: make_certificate(folder, name) for name in ("server", "rogue")}


@pytest.fixture
def tls_listener(certs: dict[str, Certificate]) -> Iterator[AsyncSocket]:
    raw = socket.socket()
    raw.bind(("127.0.0.1", 0))
    raw.listen(8)
    server = certs["server"]
    sock = AsyncSocket(raw, keyfile=server.key, certfile=server.cert)
    sock.settimeout(10)  # a handshake that stalls fails the test instead of hanging it
    yield sock
    sock.close()


def port_of(sock: AsyncSocket) -> int:
    return int(sock.getsockname()[1])


def tls_echo(listener: AsyncSocket, coro: Any = None) -> Any:
    """Accept one TLS client and echo its messages; what its socket looked like."""
    conn, _ = yield listener.accept()
    with conn:
        version = conn.version()  # delegated to the ssl.SSLSocket
        while True:
            message = yield conn.recv_msg()
            if not message:
                return isinstance(conn._sock, ssl.SSLSocket), version
            yield conn.send_msg(message)


def test_tls_echo_between_coroutines(
    tls_listener: AsyncSocket, certs: dict[str, Certificate]
) -> None:
    server = Coro(tls_echo, tls_listener)
    big = bytes(range(256)) * 16 * 1024  # 4 MiB: many records, partial writes and reads

    async def client(coro: Any = None) -> Any:
        mine = certs["server"]  # the original's clients present the same certificate
        sock = AsyncSocket(socket.socket(), keyfile=mine.key, certfile=mine.cert)
        with sock:
            sock.settimeout(10)
            await sock.connect(("127.0.0.1", port_of(tls_listener)))
            replies = []
            for message in (b"hello", b"over tls", big):
                await sock.send_msg(message)
                replies.append(await sock.recv_msg())
            return replies, sock.version()

    replies, version = Coro(client).value(timeout=30)
    assert replies == [b"hello", b"over tls", big]
    assert server.value(timeout=30) == (True, version) and version.startswith("TLS")


def test_blocking_tls_client_against_a_coroutine_server(
    tls_listener: AsyncSocket, certs: dict[str, Certificate]
) -> None:
    server = Coro(tls_echo, tls_listener)
    # verifying the server against its CA, presenting no certificate of its own
    with AsyncSocket(socket.socket(), blocking=True, cafile=certs["server"].ca) as sock:
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port_of(tls_listener)))
        assert isinstance(sock._sock, ssl.SSLSocket)
        for message in (b"one", b"two" * 50_000):
            assert sock.send_msg(message) is None
            assert sock.recv_msg() == message
    assert server.value(timeout=30)[0] is True


def test_a_server_certificate_from_another_ca_is_refused(
    tls_listener: AsyncSocket, certs: dict[str, Certificate]
) -> None:
    def server(coro: Any = None) -> Any:
        try:
            yield tls_listener.accept()
        except (ssl.SSLError, ConnectionError) as error:
            return type(error).__name__
        return "accepted"

    def client(coro: Any = None) -> Any:
        sock = AsyncSocket(socket.socket(), cafile=certs["rogue"].ca)
        sock.settimeout(10)
        try:
            yield sock.connect(("127.0.0.1", port_of(tls_listener)))
        except ssl.SSLCertVerificationError as error:
            return error.verify_message
        finally:
            sock.close()
        return "connected"

    serving = Coro(server)
    assert "unable to get local issuer certificate" in Coro(client).value(timeout=30)
    assert serving.value(timeout=30) != "accepted"


def test_a_pinned_version_is_the_one_negotiated(
    tls_listener: AsyncSocket, certs: dict[str, Certificate]
) -> None:
    server = Coro(tls_echo, tls_listener)
    previous = AsyncSocket.get_ssl_version()
    AsyncSocket.set_ssl_version(ssl.PROTOCOL_TLSv1_2)  # the later release's class method
    try:
        client = AsyncSocket(socket.socket(), cafile=certs["server"].ca)
    finally:
        AsyncSocket.set_ssl_version(previous)

    async def talk(coro: Any = None) -> Any:
        with client:
            client.settimeout(10)
            await client.connect(("127.0.0.1", port_of(tls_listener)))
            await client.send_msg(b"pinned")
            return await client.recv_msg(), client.version()

    assert Coro(talk).value(timeout=30) == (b"pinned", "TLSv1.2")
    assert server.value(timeout=30) == (True, "TLSv1.2")


def test_ssl_version_values() -> None:
    best = (None, ssl.PROTOCOL_TLS, ssl.PROTOCOL_SSLv23, ssl.PROTOCOL_TLS_CLIENT, 2)
    assert all(pinned_version(value) is None for value in best)
    assert pinned_version(ssl.PROTOCOL_TLSv1_2) is ssl.TLSVersion.TLSv1_2
    assert pinned_version(ssl.TLSVersion.TLSv1_3) is ssl.TLSVersion.TLSv1_3
    with pytest.raises(ValueError, match="unknown ssl_version"):
        pinned_version(999)
    with pytest.raises(ValueError, match="unknown ssl_version"):
        AsyncSocket.set_ssl_version(999)
    assert AsyncSocket.get_ssl_version() is None


def test_blocking_tls_server_in_a_thread_with_a_coroutine_client(
    certs: dict[str, Certificate],
) -> None:
    server = certs["server"]
    raw = socket.socket()
    raw.bind(("127.0.0.1", 0))
    raw.listen()
    listener = AsyncSocket(raw, blocking=True, keyfile=server.key, certfile=server.cert)
    listener.settimeout(10)
    outcome: list[object] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            outcome.append(isinstance(conn._sock, ssl.SSLSocket))
            outcome.append(conn.gettimeout())
            conn.send_msg(b"re:" + conn.recv_msg())

    thread = threading.Thread(target=serve)
    thread.start()

    async def client(coro: Any = None) -> bytes:
        with AsyncSocket(socket.socket(), cafile=server.ca) as sock:
            sock.settimeout(10)
            await sock.connect(("127.0.0.1", listener.getsockname()[1]))
            await sock.send_msg(b"blocking server")
            return await sock.recv_msg()

    try:
        assert Coro(client).value(timeout=30) == b"re:blocking server"
    finally:
        thread.join(30)
        listener.close()
    assert outcome == [True, socket.getdefaulttimeout()]


def test_blocking_create_connection_with_tls(
    tls_listener: AsyncSocket, certs: dict[str, Certificate]
) -> None:
    serving = Coro(tls_echo, tls_listener)
    with AsyncSocket(None, blocking=True, cafile=certs["server"].ca) as sock:
        sock.create_connection(("127.0.0.1", port_of(tls_listener)), timeout=10)
        assert sock.gettimeout() == 10.0 and isinstance(sock._sock, ssl.SSLSocket)
        sock.send_msg(b"created")
        assert sock.recv_msg() == b"created"
        assert "blocking, tls" in repr(sock)
    assert serving.value(timeout=30)[0] is True
