"""A man in the middle for link tests: a TCP relay (threads, blocking sockets) that forwards
discoro connections to a target and may tamper with what the client side sends.

It understands just enough of the stream to act at the right moment: the handshake's plain
frames (a 12-byte header carrying the control and payload lengths), then records (a 4-byte
header whose low 24 bits are the sealed length). It never knows the secret.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

FRAME_HEADER = struct.Struct("!2sBBII")
RECORD_HEADER = struct.Struct("!I")
CLIENT_HANDSHAKE_FRAMES = 2  # hello, auth
SERVER_HANDSHAKE_FRAMES = 2  # hello, ok
TIMEOUT = 30.0


class Relay:
    """Accepts at ``listen``; relays each connection to ``target``. After the client's
    handshake frames it sends ``inject`` (if any) to the target, and hands each of the
    client's records to ``tamper`` (if any), which returns what to forward instead.
    Tampering applies to the first connection only (re-dials pass untouched)."""

    def __init__(
        self,
        listen: tuple[str, int],
        target: tuple[str, int],
        inject: bytes = b"",
        tamper: Callable[[int, bytes], bytes] | None = None,
    ) -> None:
        self.target = target
        self.inject = inject
        self.tamper = tamper
        self.connections = 0
        self.server = socket.create_server(listen)
        self.server.settimeout(TIMEOUT)
        self.address = self.server.getsockname()[:2]
        self._sockets: list[socket.socket] = []
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target, timeout=TIMEOUT)
            self._sockets += [client, upstream]
            first = self.connections == 0
            self.connections += 1
            threading.Thread(target=self._pump, args=(client, upstream, first), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        _close(source, sink)

    def _pump(self, client: socket.socket, upstream: socket.socket, first: bool) -> None:
        """Client to target: frames, then records, acting on them on the first connection."""
        buffer = b""
        frames = records = 0
        try:
            while data := client.recv(65536):
                buffer += data
                out = b""
                while True:
                    if frames < CLIENT_HANDSHAKE_FRAMES:
                        if len(buffer) < FRAME_HEADER.size:
                            break
                        _, _, _, control, payload = FRAME_HEADER.unpack_from(buffer)
                        size = FRAME_HEADER.size + control + payload
                        if len(buffer) < size:
                            break
                        out, buffer, frames = out + buffer[:size], buffer[size:], frames + 1
                        if frames == CLIENT_HANDSHAKE_FRAMES and first:
                            out += self.inject
                        continue
                    if len(buffer) < RECORD_HEADER.size:
                        break
                    (word,) = RECORD_HEADER.unpack_from(buffer)
                    size = RECORD_HEADER.size + (word & 0xFFFFFF)
                    if len(buffer) < size:
                        break
                    record, buffer = buffer[:size], buffer[size:]
                    if first and self.tamper is not None:
                        record = self.tamper(records, record)
                    out, records = out + record, records + 1
                if out:
                    upstream.sendall(out)
        except OSError:
            pass
        _close(client, upstream)

    def close(self) -> None:
        self._stopped = True
        self.server.close()
        for sock in self._sockets:
            _close(sock)


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
