"""A node hands its server processes the master key (in their environment), so they skip
scrypt; the hand-off is used only for the secret it was made for and is not inherited
further. Also: the handshake's keys are derived, never the raw secret."""

from __future__ import annotations

import pytest

from discoro.wire import keys
from discoro.wire.handshake import Handshake, Role
from discoro.wire.identity import Identity
from procs import PeerProcess

SECRET = b"a secret long enough for the warning"


@pytest.fixture
def fresh(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The hand-off not yet read, and a record of every scrypt run."""
    runs: list[bytes] = []
    real = keys._scrypt

    def counting(secret: bytes) -> bytes:
        runs.append(secret)
        return real(secret)

    monkeypatch.setattr(keys, "_scrypt", counting)
    monkeypatch.setattr(keys, "_handed", keys._UNREAD)
    return runs


def test_a_handed_over_key_skips_scrypt_and_leaves_the_environment(
    fresh: list[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    value = keys.handoff(SECRET)
    expected = keys.stretch(SECRET)
    fresh.clear()
    monkeypatch.setattr(keys, "_handed", keys._UNREAD)  # as in a new process
    monkeypatch.setenv(keys.MASTER_KEY_ENV, value)
    assert keys.stretch(SECRET) == expected
    assert fresh == []
    assert keys.MASTER_KEY_ENV not in __import__("os").environ


@pytest.mark.parametrize("value", ["other", "zz:zz", "00" * 32 + ":0000000000000000", ""])
def test_a_hand_off_for_another_secret_or_malformed_falls_back_to_scrypt(
    fresh: list[bytes], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    if value == "other":
        value = keys.handoff(b"another secret")
    fresh.clear()
    monkeypatch.setattr(keys, "_handed", keys._UNREAD)  # as in a new process
    monkeypatch.setenv(keys.MASTER_KEY_ENV, value)
    keys.stretch(SECRET)
    assert fresh == [SECRET]


def test_a_child_uses_the_hand_off_and_does_not_pass_it_on() -> None:
    program = """
import os
from discoro.wire import keys
runs = []
real = keys._scrypt
keys._scrypt = lambda secret: runs.append(secret) or real(secret)
key = keys.stretch(os.environ["DISCORO_SECRET"].encode())
print("KEY", key.hex(), "SCRYPT", len(runs), "LEFT", keys.MASTER_KEY_ENV in os.environ)
"""
    env = {"DISCORO_SECRET": SECRET.decode(), keys.MASTER_KEY_ENV: keys.handoff(SECRET)}
    with PeerProcess(program, env=env) as proc:
        match = proc.expect(r"^KEY (\w+) SCRYPT (\d+) LEFT (\w+)$")
    assert match.groups() == (keys.stretch(SECRET).hex(), "0", "False")


def test_handshake_macs_are_not_keyed_by_the_master_key_itself() -> None:
    import hashlib
    import hmac

    master = keys.stretch(SECRET)
    client = Handshake(Role.CLIENT, master, Identity("c", "127.0.0.1", 1, "c1"))
    server = Handshake(Role.SERVER, master, Identity("s", "127.0.0.1", 2, "s1"))
    (hello,) = server.receive(client.start()[0])
    transcript = server._transcript
    for key in (master, SECRET):
        assert (
            hello["mac"] != hmac.new(key, b"discoro server" + transcript, hashlib.sha256).digest()
        )
    (auth,) = client.receive(hello)
    server.receive(auth)
    client.receive({"op": "ok"})
    assert client.session_keys() == server.session_keys()[::-1]
    send, receive = client.session_keys()
    assert send != receive and master not in (send, receive)
