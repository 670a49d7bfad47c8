"""The key schedule: HKDF against RFC 5869's vectors, scrypt stretching, labelled keys."""

from __future__ import annotations

import hashlib

import pytest

from discoro.wire import keys


def test_hkdf_matches_rfc5869_case_1() -> None:
    ikm = bytes.fromhex("0b" * 22)
    salt = bytes.fromhex("000102030405060708090a0b0c")
    info = bytes.fromhex("f0f1f2f3f4f5f6f7f8f9")
    okm = keys.hkdf(ikm, salt, info, 42)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_hkdf_matches_rfc5869_case_3_empty_salt_and_info() -> None:
    okm = keys.hkdf(bytes.fromhex("0b" * 22), b"", b"", 42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )


def test_hkdf_refuses_impossible_lengths() -> None:
    with pytest.raises(ValueError, match="HKDF-SHA256 gives"):
        keys.hkdf(b"k", b"", b"", 0)
    with pytest.raises(ValueError, match="HKDF-SHA256 gives"):
        keys.hkdf(b"k", b"", b"", 255 * 32 + 1)


def test_stretch_is_scrypt_of_the_secret_and_cached() -> None:
    expected = hashlib.scrypt(
        b"s3cret",
        salt=keys.SCRYPT_SALT,
        n=keys.SCRYPT_N,
        r=keys.SCRYPT_R,
        p=keys.SCRYPT_P,
        maxmem=64 * 2**20,
        dklen=32,
    )
    assert keys.stretch(b"s3cret") == expected
    assert keys.stretch(b"s3cret") is keys.stretch(b"s3cret")
    assert keys.stretch(b"other") != expected


def test_stretch_refuses_an_empty_secret() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        keys.stretch(b"")


def test_labels_give_independent_keys() -> None:
    master = bytes(range(32))
    assert keys.derive(master, "discovery") != keys.derive(master, "web token")
    assert keys.derive(master, "discovery") == keys.derive(master, "discovery")
    assert len(keys.derive(master, "discovery")) == keys.KEY_SIZE
