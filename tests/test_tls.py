"""TLS between real discoro processes (reference 2.11, DESIGN decision 4).

Certificates are made at test time with the ``openssl`` command: a CA, two node certificates
it signs, and a rogue CA with a node certificate of its own. Every process runs as a child on
127.0.0.1; a "probe" process dials a "serve" process, pairs, locates its ``echo`` coroutine
and gets an answer, printing what happened.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from discoro.wire import Connection, Identity, Role, new_sid
from discoro.wire.frames import MAGIC
from procs import PeerProcess, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

TIMEOUT = 15.0
UVLOOP = importlib.util.find_spec("uvloop") is not None  # the kernel uses it when installed

NODE = """
import json, sys
import discoro
options = json.loads(sys.argv[1])
kernel = discoro.AsynCoro(node="127.0.0.1", discover=False, **options)

def echo(coro=None):
    coro.register("echo")
    while True:
        msg = yield coro.receive()
        msg[0].send(("echoed", msg[1]))

def probe(port, coro=None):
    location = discoro.Location("127.0.0.1", port)
    result = yield kernel.peer(location)
    print("PEER", result, flush=True)
    if result == 0:
        echo = yield discoro.Coro.locate("echo", location, timeout=5)
        echo.send((coro, "over-tls"))
        print("REPLY", (yield coro.receive(timeout=5)), flush=True)

if len(sys.argv) > 2:
    discoro.Coro(probe, int(sys.argv[2])).value(30)
else:
    discoro.Coro(echo)
    print("READY", kernel.location, flush=True)
    sys.stdin.read()
"""


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    key, cert = folder / f"{name}.key", folder / f"{name}.pem"
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    return cert, key


def make_node(folder: Path, name: str, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    key, csr, cert = folder / f"{name}.key", folder / f"{name}.csr", folder / f"{name}.pem"
    extensions = folder / f"{name}.ext"
    extensions.write_text(
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
    )
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={name}",
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca[0]), "-CAkey", str(ca[1]),
        "-CAcreateserial", "-out", str(cert), "-days", "2", "-extfile", str(extensions),
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if shutil.which("openssl") is None:
        pytest.fail(
            "the openssl command is needed to make test certificates (scripts/test.sh installs it)"
        )
    folder = tmp_path_factory.mktemp("pki")
    ca = make_ca(folder, "discoro-test-ca")
    rogue_ca = make_ca(folder, "rogue-ca")
    files = {"ca": str(ca[0]), "rogue_ca": str(rogue_ca[0])}
    for name, signer in (("alpha", ca), ("beta", ca), ("rogue", rogue_ca)):
        cert, key = make_node(folder, name, signer)
        files[name], files[f"{name}_key"] = str(cert), str(key)
    return files


def tls_options(pki: dict[str, str], node: str, ca: str | None = None) -> dict[str, str]:
    options = {"certfile": pki[node], "keyfile": pki[f"{node}_key"]}
    if ca:
        options["cafile"] = pki[ca]
    return options


def serve(options: dict[str, object]) -> tuple[PeerProcess, int]:
    port = free_port()
    proc = PeerProcess(NODE, json.dumps({**options, "tcp_port": port}))
    proc.expect(r"^READY ", timeout=TIMEOUT)
    return proc, port


def probe(port: int, options: dict[str, object], env: dict[str, str] | None = None) -> list[str]:
    """Run a probe against ``port``; its output lines."""
    with PeerProcess(NODE, json.dumps(options), str(port), env=env) as proc:
        assert proc.wait(TIMEOUT * 2) == 0, proc.output
        proc._reader.join(5)
        return proc.output


@pytest.fixture(scope="module")
def tls_server(pki: dict[str, str], cluster_secret: str) -> Iterator[tuple[PeerProcess, int]]:
    proc, port = serve(tls_options(pki, "alpha"))
    with proc:
        yield proc, port


@pytest.fixture(scope="module")
def verifying_server(pki: dict[str, str], cluster_secret: str) -> Iterator[tuple[PeerProcess, int]]:
    proc, port = serve(tls_options(pki, "alpha", ca="ca"))
    with proc:
        yield proc, port


def test_two_processes_talk_over_tls(tls_server: tuple[PeerProcess, int], pki: dict[str, str]):
    _, port = tls_server
    output = probe(port, tls_options(pki, "beta"))
    assert "PEER 0" in output and "REPLY ('echoed', 'over-tls')" in output, output


def test_the_port_speaks_tls_and_nothing_else(
    tls_server: tuple[PeerProcess, int], pki: dict[str, str]
) -> None:
    proc, port = tls_server
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw) as tls,
    ):
        served = tls.getpeercert(binary_form=True)
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert served == ssl.PEM_cert_to_DER_cert(Path(pki["alpha"]).read_text())

    # A plain TCP client speaking discoro gets no discoro answer, only a TLS failure.
    hello = Connection(Role.CLIENT, b"s", Identity("plain", "127.0.0.1", 1, new_sid()))
    hello.start()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(hello.data_to_send())
        answer = b""
        while chunk := _recv(sock):
            answer += chunk
    assert not answer.startswith(MAGIC)
    assert answer == b"" or answer[0] == 0x15, answer[:16]  # nothing, or a TLS alert record
    if not UVLOOP:  # there the server does TLS itself, silently (see link.accept_tls)
        proc.expect(rf"refused TLS connection with 127\.0\.0\.1:{client_port}\b")


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except ConnectionResetError:
        return b""


def test_plain_peer_cannot_talk_to_a_tls_peer(tls_server: tuple[PeerProcess, int]) -> None:
    _, port = tls_server
    assert "PEER -1" in probe(port, {})


def test_with_a_ca_both_sides_verify(
    verifying_server: tuple[PeerProcess, int], pki: dict[str, str]
) -> None:
    _, port = verifying_server
    output = probe(port, tls_options(pki, "beta", ca="ca"))
    assert "PEER 0" in output and "REPLY ('echoed', 'over-tls')" in output, output


def test_a_certificate_not_signed_by_the_ca_is_refused(
    verifying_server: tuple[PeerProcess, int], pki: dict[str, str]
) -> None:
    proc, port = verifying_server
    before = sum("refused TLS connection" in line for line in proc.output)
    # The rogue trusts our CA (so it accepts the server) but is not signed by it.
    assert "PEER -1" in probe(port, tls_options(pki, "rogue", ca="ca"))
    if not UVLOOP:
        proc.expect(r"refused TLS connection with 127\.0\.0\.1:\d+: .*certificate")
        assert sum("refused TLS connection" in line for line in proc.output) == before + 1
    # A good certificate that does not trust the server's CA refuses the server.
    assert "PEER -1" in probe(port, tls_options(pki, "beta", ca="rogue_ca"))
    # The server is unharmed.
    assert "PEER 0" in probe(port, tls_options(pki, "beta", ca="ca"))


def test_wrong_secret_over_tls_is_still_refused(
    verifying_server: tuple[PeerProcess, int], pki: dict[str, str]
) -> None:
    proc, port = verifying_server
    output = probe(port, tls_options(pki, "beta", ca="ca"), env={"DISCORO_SECRET": "other"})
    assert "PEER -1" in output
    proc.expect(r"refused connection with 127\.0\.0\.1:\d+: .*authentication failed")


def test_tls_options_without_a_certificate_are_refused() -> None:
    from discoro.net.tls import contexts

    assert contexts(None, None, None) == (None, None)
    with pytest.raises(ValueError, match="cafile given without certfile"):
        contexts(None, None, "ca.pem")
    with pytest.raises(ValueError, match="keyfile and cafile given without certfile"):
        contexts(None, "key.pem", "ca.pem")
