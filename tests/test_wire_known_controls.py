"""KnownControls: the receive side's message decoder that remembers repeated controls.

A remembered control must decode exactly as a fresh one would (same message, its own fields
map), only well-formed requestless controls with scalar fields are remembered, the memory is
bounded, and a malformed control is refused every time it comes (never remembered)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from discoro.errors import ProtocolError
from discoro.wire.messages import (
    KNOWN_CONTROL_SIZE,
    KNOWN_CONTROLS,
    KnownControls,
    decode_message,
)
from discoro.wire.safepack import pack, unpack_map


def decoded_twice(control: dict[str, object], payload: bytes | None) -> tuple[object, object]:
    known = KnownControls()
    data = memoryview(pack(control))
    return known(data, payload), known(data, payload)


def test_a_repeated_control_decodes_as_a_fresh_one_with_its_own_fields() -> None:
    known = KnownControls()
    data = memoryview(pack({"op": "send", "f": {"c": 17, "r": 1, "t": "abc"}}))
    first = known(data, b"one")
    second = known(data, b"two")
    assert second == decode_message(unpack_map(data, "x"), b"two")
    assert first.payload == b"one" and second.payload == b"two"
    assert first.fields == second.fields and first.fields is not second.fields
    first.fields["c"] = 99  # a handler that changes its message's fields changes no other
    assert known(data, None).fields["c"] == 17
    assert len(known._known) == 1


@pytest.mark.parametrize(
    "control",
    [
        {"op": "reply", "rid": 7, "f": {"r": 1}},  # a request id: replies differ every time
        {"op": "send", "f": {"c": 1, "o": [1, 2]}},  # a non-scalar field: could be shared
        {"op": "send", "f": {"c": 1, "s": "x" * KNOWN_CONTROL_SIZE}},  # too big
    ],
)
def test_what_is_not_remembered_still_decodes(control: dict[str, object]) -> None:
    known = KnownControls()
    data = memoryview(pack(control))
    first, second = known(data, None), known(data, None)
    assert first == second == decode_message(control, None)
    assert not known._known
    if "o" in first.fields:  # its list is not shared between the two messages
        assert first.fields["o"] is not second.fields["o"]


def test_memory_is_bounded_when_the_peer_never_repeats_itself() -> None:
    known = KnownControls()
    for i in range(KNOWN_CONTROLS * 3 + 5):
        message = known(memoryview(pack({"op": "send", "f": {"c": i}})), None)
        assert message.fields == {"c": i}
        assert len(known._known) <= KNOWN_CONTROLS


@pytest.mark.parametrize(
    "data",
    [
        pack({"op": "reply", "f": {"r": 1}}),  # a reply without its request id
        pack({"op": "send", "x": 1}),  # an unknown control key
        pack([1, 2]),  # not a map
        b"\x81\xa2op",  # truncated
    ],
)
def test_a_malformed_control_is_refused_every_time(data: bytes) -> None:
    known = KnownControls()
    for _ in range(3):
        with pytest.raises(ProtocolError):
            known(memoryview(data), None)
    assert not known._known


scalars = st.one_of(
    st.integers(-(2**63), 2**64 - 1), st.text(max_size=8), st.binary(max_size=8), st.none()
)
values = st.one_of(scalars, st.lists(scalars, max_size=3))


@settings(max_examples=200, deadline=None)
@given(
    op=st.sampled_from(["send", "deliver", "reply", "pong", "new_op"]),
    rid=st.integers(0, 3),
    fields=st.dictionaries(st.text(min_size=1, max_size=4), values, max_size=4),
    payload=st.one_of(st.none(), st.binary(max_size=16)),
)
def test_same_result_as_decoding_afresh(
    op: str, rid: int, fields: dict[str, object], payload: bytes | None
) -> None:
    control: dict[str, object] = {"op": op}
    if rid:
        control["rid"] = rid
    if fields:
        control["f"] = fields
    try:
        expected = decode_message(unpack_map(pack(control), "x"), payload)
    except ProtocolError:
        for _ in range(2):
            with pytest.raises(ProtocolError):
                KnownControls()(memoryview(pack(control)), payload)
        return
    assert decoded_twice(control, payload) == (expected, expected)
