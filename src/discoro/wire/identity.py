"""Identity: who is at the other end of a connection, as claimed in its handshake HELLO.

An identity names a process: a human-readable ``name``, the ``addr``/``port`` it accepts
connections on, and ``sid``, a random id drawn once per process (`new_sid`) so the upper
layer can tell two connections to the same process apart from two processes that share an
address (and detect simultaneous dials). It is trusted only once the handshake verified the
peer's MAC over the transcript that carried it.

Invariants: name, addr and sid are non-empty str of bounded length; 0 <= port <= 65535.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from discoro.errors import ProtocolError

__all__ = ["Identity", "identity_fields", "identity_from_fields", "new_sid"]

MAX_NAME_LEN = 255
MAX_SID_LEN = 64


def new_sid() -> str:
    """A fresh random process id (128 bits, hex)."""
    return secrets.token_hex(16)


def _problem(name: object, addr: object, port: object, sid: object) -> str:
    """Why these parts cannot form an identity, or "" when they can."""
    for label, text, limit in (
        ("name", name, MAX_NAME_LEN),
        ("addr", addr, MAX_NAME_LEN),
        ("sid", sid, MAX_SID_LEN),
    ):
        if type(text) is not str or not text or len(text) > limit:
            return f"identity {label} must be a str of 1 to {limit} characters, not {text!r}"
    if type(port) is not int or not 0 <= port <= 65535:
        return f"identity port must be an int in 0..65535, not {port!r}"
    return ""


@dataclass(frozen=True, slots=True)
class Identity:
    """A process's name, listening address and per-process random id."""

    name: str
    addr: str
    port: int
    sid: str

    def __post_init__(self) -> None:
        problem = _problem(self.name, self.addr, self.port, self.sid)
        if problem:
            raise ValueError(problem)


def identity_fields(identity: Identity) -> dict[str, Any]:
    """The map entries that carry ``identity`` in a HELLO body."""
    return {
        "name": identity.name,
        "addr": identity.addr,
        "port": identity.port,
        "sid": identity.sid,
    }


def identity_from_fields(fields: dict[str, Any]) -> Identity:
    """The identity carried by a received HELLO body; ProtocolError if malformed."""
    name: Any = fields.get("name")
    addr: Any = fields.get("addr")
    port: Any = fields.get("port")
    sid: Any = fields.get("sid")
    problem = _problem(name, addr, port, sid)
    if problem:
        raise ProtocolError(f"malformed handshake: {problem}")
    return Identity(name, addr, port, sid)
