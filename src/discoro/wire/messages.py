"""Messages: what authenticated peers exchange, one per frame.

A message is an operation name (one of `OPS`), a request id, a map of msgpack-native fields
and an optional opaque payload (user data pickled by an upper layer; never decoded here).
``rid > 0`` means the sender awaits a reply: a message with op ``"reply"`` and the same rid.

Control map layout (keys left out when they hold their default)::

    {"op": str, "rid": int > 0, "f": {str: msgpack-native value}}

Invariants:
- On receive, an op that is not a short str, a negative or non-int rid, a reply without a
  rid, fields that are not a str-keyed map, or any other control key is refused with
  ProtocolError (the stream is then unusable). A well-formed op this version does not know
  (a newer peer's) is handed up as it is: the upper layer answers it with an error and the
  link goes on.
- Built locally, a message must use one of `OPS` (ValueError/TypeError otherwise), except
  through `trusted_message`, which skips the checks for the hot paths that build messages
  from constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from discoro.errors import ProtocolError
from discoro.wire.safepack import unpack_map

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "KNOWN_CONTROLS",
    "KNOWN_CONTROL_SIZE",
    "MAX_OP_LEN",
    "OPS",
    "KnownControls",
    "Message",
    "decode_message",
    "message_control",
    "trusted_message",
]

OPS: frozenset[str] = frozenset(
    {
        "send",
        "deliver",
        "control_send",  # a `send` of a message type that travels on the control lane
        "control_deliver",  # likewise for `deliver`
        "reply",
        "monitor",
        "notify_exit",
        "terminate",
        "throw",
        "locate",
        "subscribe",
        "unsubscribe",
        "channel_send",
        "channel_deliver",
        "rci_call",
        "file_begin",
        "file_chunk",
        "file_end",
        "del_file",
        "ping",
        "pong",
        "link_retired",
        "peer_closed",
    }
)

_CONTROL_KEYS = frozenset({"op", "rid", "f"})
MAX_OP_LEN = 64


def _problem(op: object, rid: object, fields: object, known_op: bool = True) -> str:
    """Why these parts cannot form a message, or "" when they can (``known_op``: the op must
    be one of `OPS`, else any short str will do)."""
    if type(op) is not str or not 0 < len(op) <= MAX_OP_LEN:
        return f"bad op {op!r}"
    if known_op and op not in OPS:
        return f"unknown op {op!r}"
    if type(rid) is not int or rid < 0:
        return f"bad request id {rid!r}"
    if op == "reply" and rid == 0:
        return "a reply without the request id it answers"
    if type(fields) is not dict:
        return f"message fields must be a map, not {type(fields).__name__}"
    for key in fields:
        if type(key) is not str:
            return f"message field name {key!r} is not a str"
    return ""


@dataclass(frozen=True, slots=True)
class Message:
    """One message between authenticated peers; see the module docstring."""

    op: str
    rid: int = 0
    fields: dict[str, Any] = field(default_factory=dict)
    payload: bytes | bytearray | None = None  # bytearray: a large payload as received

    def __post_init__(self) -> None:
        problem = _problem(self.op, self.rid, self.fields)
        if problem:
            raise ValueError(problem)
        if self.payload is not None and not isinstance(self.payload, bytes | bytearray):
            raise TypeError(f"payload must be bytes or None, not {type(self.payload).__name__}")


def message_control(message: Message) -> dict[str, Any]:
    """The control map that carries ``message`` (its payload travels beside it)."""
    control: dict[str, Any] = {"op": message.op}
    if message.rid:
        control["rid"] = message.rid
    if message.fields:
        control["f"] = message.fields
    return control


def decode_message(control: dict[str, Any], payload: bytes | bytearray | None) -> Message:
    """Build a message from a received frame; ProtocolError if it is not a valid one."""
    op: Any = control.get("op")
    rid: Any = control.get("rid", 0)
    fields: Any = control.get("f", _NO_FIELDS)
    # The per-frame hot path: the checks of `_problem` inlined (a well-formed message passes
    # them all); anything they refuse goes to `_refuse`, which says why.
    if (
        type(op) is not str
        or not 0 < len(op) <= MAX_OP_LEN
        or type(rid) is not int
        or rid < 0
        or type(fields) is not dict
        or (len(control) > 1 and not _CONTROL_KEYS.issuperset(control))
        or (not rid and op == "reply")
    ):
        _refuse(control, op, rid, fields)
    for key in fields:
        if type(key) is not str:
            _refuse(control, op, rid, fields)
    if fields is _NO_FIELDS:
        fields = {}
    # Validated above: skip the frozen dataclass's slower __init__ and __post_init__.
    message = _new_message(Message)
    _set_op(message, op)
    _set_rid(message, rid)
    _set_fields(message, fields)
    _set_payload(message, payload)
    return message


def _refuse(control: dict[str, Any], op: object, rid: object, fields: object) -> NoReturn:
    """Raise the ProtocolError that explains why ``control`` is not a message."""
    problem = _problem(op, rid, fields, known_op=False)
    if not problem:
        problem = f"unknown message keys {sorted(set(control) - _CONTROL_KEYS)}"
    raise ProtocolError(problem)


#: `KnownControls` remembers at most this many controls, each of at most this many bytes.
KNOWN_CONTROLS, KNOWN_CONTROL_SIZE = 64, 256
_SCALARS = frozenset({int, str, bytes, float, bool, type(None)})


class KnownControls:
    """Decodes frames into messages (a `FrameDecoder.drain` ``decode_raw``), remembering the
    controls of recent requestless messages: a stream of sends to one coroutine repeats the
    same control bytes frame after frame, and a frame whose control bytes are those of one
    already decoded and checked skips msgpack and the checks.

    Invariants: only a control that `decode_message` accepted is remembered, with rid 0 and
    fields whose values are all scalars (each message gets its own copy of the fields map,
    so a handler that changes one changes no other); at most `KNOWN_CONTROLS` of at most
    `KNOWN_CONTROL_SIZE` bytes each (when full, it forgets them all), so a peer that never
    repeats itself costs a bounded few hundred bytes and one dict look-up per frame.
    One per connection; not thread-safe."""

    __slots__ = ("_known",)

    def __init__(self) -> None:
        self._known: dict[bytes, tuple[str, dict[str, object]]] = {}

    def __call__(self, control: memoryview, payload: bytes | None) -> Message:
        key = bytes(control)
        known = self._known.get(key)
        if known is None:
            message = decode_message(unpack_map(control, "frame control"), payload)
            if not message.rid and len(key) <= KNOWN_CONTROL_SIZE:
                fields = message.fields
                for value in fields.values():
                    if type(value) not in _SCALARS:
                        return message
                known_controls = self._known
                if len(known_controls) >= KNOWN_CONTROLS:
                    known_controls.clear()
                known_controls[key] = (message.op, fields.copy())
            return message
        message = _new_message(Message)
        _set_op(message, known[0])
        _set_rid(message, 0)
        _set_fields(message, known[1].copy())
        _set_payload(message, payload)
        return message

    def run(
        self,
        handle: Callable[[Message], object],
        handle_run: Callable[[Message, list[bytes]], object],
        control: bytes,
        payloads: list[bytes],
    ) -> None:
        """A run of frames with the same ``control`` bytes (`FrameDecoder.drain`'s
        ``handle_run``, with the first two bound): a remembered control goes up as one
        ``handle_run(message, payloads)``, the message without a payload (its fields a copy,
        as for each frame); any other (a request, fields that are not scalars) frame by
        frame, as if there were no runs."""
        known = self._known.get(control)
        if known is None:
            for payload in payloads:
                handle(self(memoryview(control), payload))
            return
        message = _new_message(Message)
        _set_op(message, known[0])
        _set_rid(message, 0)
        _set_fields(message, known[1].copy())
        _set_payload(message, None)
        handle_run(message, payloads)


def trusted_message(
    op: str,
    rid: int = 0,
    fields: dict[str, Any] | None = None,
    payload: bytes | bytearray | None = None,
) -> Message:
    """A message built without the checks of `Message` (for parts known to be valid)."""
    message = _new_message(Message)
    _set_op(message, op)
    _set_rid(message, rid)
    _set_fields(message, {} if fields is None else fields)
    _set_payload(message, payload)
    return message


_NO_FIELDS: dict[str, Any] = {}
_new_message = object.__new__
_set_op = Message.__dict__["op"].__set__
_set_rid = Message.__dict__["rid"].__set__
_set_fields = Message.__dict__["fields"].__set__
_set_payload = Message.__dict__["payload"].__set__
