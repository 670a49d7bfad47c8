"""Mutual HMAC-SHA256 challenge-response that also agrees on the link's session keys.

Flow (control maps of frames without payload; CLIENT dials, SERVER accepts)::

    C -> S  {"op": "hello", "body": Bc}
    S -> C  {"op": "hello", "body": Bs, "mac": HMAC(K_mac, b"discoro server" + T)}
    C -> S  {"op": "auth", "mac": HMAC(K_mac, b"discoro client" + T)}
    S -> C  {"op": "ok"}
    ... then AEAD records both ways (`wire.record`), keyed K_cs (client to server) and K_sc

Each body is a msgpack map {"version", "nonce" (32 fresh random bytes), "name", "addr",
"port", "sid"}; ``T = u32(len Bc) + Bc + u32(len Bs) + Bs`` is the transcript: the exact
body bytes both sides sent, so the MACs authenticate both identities and both nonces.
``M`` is the cluster's master key (`keys.stretch` of the secret); ``K_mac = derive(M, "link
handshake mac")``; the session keys are ``HKDF-SHA256(M, salt = SHA-256(T), info = label +
version + direction)``, fresh for every connection and bound to both nonces, both
identities and the protocol version.

Invariants:
- Neither the secret nor the master key goes on the wire, and no MAC is keyed by the raw
  secret: a sniffed handshake costs an offline guesser one scrypt run per guess. Digests are
  compared with `hmac.compare_digest`.
- A relay that forwards the handshake learns no session key, so it can neither read nor
  inject a record: authentication covers every byte after the handshake, not just its start.
- Fresh nonces per connection defeat replay; the role labels make the two MACs differ, so
  reflecting one side's MAC back fails; a peer echoing our own nonce is refused.
- The "version" key exists in every protocol version's body. A side that sees another
  version sends {"op": "refuse", "kind": "version", "reason": ...} and raises VersionMismatch;
  a side that fails to verify a MAC refuses with kind "auth" and raises AuthenticationError;
  a side that receives a refusal raises the matching error with the peer's reason.
- A peer's identity is exposed (`peer`) and the session keys (`session_keys`) exist only
  after the peer's MAC verified.
- Version 2 is the first with records (version 3 added the bulk lane, version 4 made its
  records up to 256 KiB); older peers are refused with a message that names both versions.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import secrets
from struct import Struct
from typing import Any

from discoro.errors import (
    AuthenticationError,
    LocalProtocolError,
    ProtocolError,
    VersionMismatch,
)
from discoro.wire.identity import Identity, identity_fields, identity_from_fields
from discoro.wire.keys import derive, hkdf
from discoro.wire.safepack import pack, unpack_map

__all__ = [
    "DIRECTIONS",
    "HANDSHAKE_MAX_FRAME",
    "NONCE_SIZE",
    "PROTOCOL_VERSION",
    "Handshake",
    "Role",
]

PROTOCOL_VERSION = 4  # 3: the bulk lane (records of lane 2); 4: bulk records of 256 KiB
NONCE_SIZE = 32
HANDSHAKE_MAX_FRAME = 4096  # bytes of control per frame before authentication
MAX_REASON_LEN = 500

_LEN = Struct("!I")
_MAC_SIZE = hashlib.sha256().digest_size
_AUTH_FAILED = "peer failed authentication: wrong secret? (or a replayed handshake)"


class Role(enum.Enum):
    """Which end of the connection we are."""

    CLIENT = "client"  # dialled the connection; speaks first
    SERVER = "server"  # accepted it


_SESSION_INFO = b"discoro link v%d session key %s"
#: The 4-byte label that starts every record nonce, by the direction the record travels.
DIRECTIONS = {Role.CLIENT: b"c2s\0", Role.SERVER: b"s2c\0"}
_LABELS = {Role.SERVER: b"discoro server", Role.CLIENT: b"discoro client"}


class _Step(enum.Enum):
    START = enum.auto()
    AWAIT_HELLO = enum.auto()
    AWAIT_AUTH = enum.auto()  # server only
    AWAIT_OK = enum.auto()  # client only
    DONE = enum.auto()


def refusal(exc: ProtocolError) -> dict[str, Any]:
    """The REFUSE control map that tells the peer why we are giving up."""
    if isinstance(exc, VersionMismatch):
        return {"op": "refuse", "kind": "version", "reason": str(exc)}
    if isinstance(exc, AuthenticationError):
        return {"op": "refuse", "kind": "auth", "reason": "authentication failed: wrong secret?"}
    return {"op": "refuse", "kind": "protocol", "reason": str(exc)[:MAX_REASON_LEN]}


def _refused(control: dict[str, Any]) -> ProtocolError:
    """The error to raise for a REFUSE the peer sent."""
    reason, kind = control.get("reason"), control.get("kind")
    if type(reason) is not str:
        reason = "no reason given"
    reason = "".join(c if c.isprintable() else "?" for c in reason[:MAX_REASON_LEN])
    text = f"peer refused the connection: {reason}"
    if kind == "version":
        return VersionMismatch(text)
    if kind == "auth":
        return AuthenticationError(text)
    return ProtocolError(text)


def _expect_keys(control: dict[str, Any], keys: frozenset[str]) -> None:
    if control.keys() != keys:
        raise ProtocolError(
            f"malformed handshake {control.get('op')!r}: keys {sorted(control)}, "
            f"expected {sorted(keys)}"
        )


def _bin(control: dict[str, Any], key: str, size: int) -> bytes:
    value = control.get(key)
    if type(value) is not bytes or len(value) != size:
        raise ProtocolError(f"malformed handshake: {key!r} must be {size} bytes")
    return value


class Handshake:
    """One side's handshake state machine: control maps in, control maps out.

    `start` gives the first maps to send (the client's HELLO); `receive` takes each received
    control map and returns the maps to send in reply, raising ProtocolError (or a subclass)
    when the handshake fails. `peer` is set once it succeeded. ``version`` exists for tests.
    """

    def __init__(
        self, role: Role, master: bytes, identity: Identity, *, version: int = PROTOCOL_VERSION
    ) -> None:
        """``master`` is the cluster's master key (`keys.stretch` of the secret)."""
        if type(master) is not bytes or not master:
            raise ValueError("the master key must be non-empty bytes")
        self.role = role
        self.identity = identity
        self.version = version
        self.peer: Identity | None = None
        self.refused_by_peer = False  # the failure was the peer's REFUSE: don't answer it
        self._master = master
        self._mac_key = derive(master, "link handshake mac")
        self._session: tuple[bytes, bytes] | None = None
        self._nonce = secrets.token_bytes(NONCE_SIZE)
        self._step = _Step.START
        self._body = pack({"version": version, "nonce": self._nonce, **identity_fields(identity)})
        self._transcript = b""
        self.link_id = b""  # SHA-256 of the transcript, once done: not secret (see `_finish`)
        self._pending_peer: Identity | None = None

    @property
    def done(self) -> bool:
        return self._step is _Step.DONE

    def start(self) -> list[dict[str, Any]]:
        """Begin: the client says HELLO, the server waits for one."""
        if self._step is not _Step.START:
            raise LocalProtocolError("handshake already started")
        self._step = _Step.AWAIT_HELLO
        if self.role is Role.CLIENT:
            return [{"op": "hello", "body": self._body}]
        return []

    def receive(self, control: dict[str, Any]) -> list[dict[str, Any]]:
        """Process one received control map; return the maps to send back."""
        if self._step is _Step.START:
            if self.role is Role.CLIENT:
                raise LocalProtocolError("the client must start() the handshake first")
            self.start()
        op = control.get("op")
        if op == "refuse":
            self.refused_by_peer = True
            raise _refused(control)
        step = self._step
        if op == "hello" and step is _Step.AWAIT_HELLO:
            if self.role is Role.SERVER:
                return self._server_hello(control)
            return self._client_hello(control)
        if op == "auth" and step is _Step.AWAIT_AUTH:
            return self._auth(control)
        if op == "ok" and step is _Step.AWAIT_OK:
            _expect_keys(control, frozenset({"op"}))
            self._finish()
            return []
        raise ProtocolError(f"unexpected {op!r} during the handshake ({step.name.lower()})")

    def _mac(self, role: Role) -> bytes:
        return hmac.new(self._mac_key, _LABELS[role] + self._transcript, hashlib.sha256).digest()

    def _check_mac(self, got: bytes, role: Role) -> None:
        if not hmac.compare_digest(got, self._mac(role)):
            raise AuthenticationError(_AUTH_FAILED)

    def _peer_body(self, control: dict[str, Any], keys: frozenset[str]) -> bytes:
        """Check a HELLO's shape and version; return its exact body bytes."""
        _expect_keys(control, keys)
        body = control["body"]
        if type(body) is not bytes:
            raise ProtocolError("malformed handshake: 'body' must be bytes")
        fields = unpack_map(body, "handshake hello")
        version = fields.get("version")
        if type(version) is not int:
            raise ProtocolError("malformed handshake: no protocol version")
        if version != self.version:
            raise VersionMismatch(
                f"peer speaks discoro protocol version {version}, we speak {self.version}: "
                f"run the same discoro release on both sides"
            )
        _expect_keys(fields, frozenset({"version", "nonce", "name", "addr", "port", "sid"}))
        if _bin(fields, "nonce", NONCE_SIZE) == self._nonce:
            raise AuthenticationError("peer echoed our own nonce (reflection?)")
        self._pending_peer = identity_from_fields(fields)
        return body

    def _server_hello(self, control: dict[str, Any]) -> list[dict[str, Any]]:
        client_body = self._peer_body(control, frozenset({"op", "body"}))
        self._transcript = _transcript(client_body, self._body)
        self._step = _Step.AWAIT_AUTH
        return [{"op": "hello", "body": self._body, "mac": self._mac(Role.SERVER)}]

    def _client_hello(self, control: dict[str, Any]) -> list[dict[str, Any]]:
        server_body = self._peer_body(control, frozenset({"op", "body", "mac"}))
        self._transcript = _transcript(self._body, server_body)
        self._check_mac(_bin(control, "mac", _MAC_SIZE), Role.SERVER)
        self._step = _Step.AWAIT_OK
        return [{"op": "auth", "mac": self._mac(Role.CLIENT)}]

    def _auth(self, control: dict[str, Any]) -> list[dict[str, Any]]:
        _expect_keys(control, frozenset({"op", "mac"}))
        self._check_mac(_bin(control, "mac", _MAC_SIZE), Role.CLIENT)
        self._finish()
        return [{"op": "ok"}]

    def _finish(self) -> None:
        self._step = _Step.DONE
        self.peer = self._pending_peer
        salt = hashlib.sha256(self._transcript).digest()
        self.link_id = salt  # the same at both ends, unique per connection (both nonces)
        keys = {
            direction: hkdf(self._master, salt, _SESSION_INFO % (self.version, direction))
            for direction in (b"c2s", b"s2c")
        }
        if self.role is Role.CLIENT:
            self._session = keys[b"c2s"], keys[b"s2c"]
        else:
            self._session = keys[b"s2c"], keys[b"c2s"]
        self._master = self._mac_key = b""  # no longer needed; don't keep them around

    def session_keys(self) -> tuple[bytes, bytes]:
        """(key for what we send, key for what we receive), once the handshake is done."""
        if self._session is None:
            raise LocalProtocolError("no session keys before the handshake is done")
        return self._session


def _transcript(client_body: bytes, server_body: bytes) -> bytes:
    return _LEN.pack(len(client_body)) + client_body + _LEN.pack(len(server_body)) + server_body
