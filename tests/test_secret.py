"""Where the cluster secret comes from (DESIGN decision 4): an explicit secret, else
``DISCORO_SECRET``, else ``~/.discoro/secret`` made with mode 0600 on first use."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from discoro.net.secret import SECRET_ENV, resolve_secret, secret_file
from procs import SRC

if TYPE_CHECKING:
    from pathlib import Path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh HOME with no secret file and no DISCORO_SECRET."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(SECRET_ENV, raising=False)
    return tmp_path


def test_explicit_secret_wins(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "from-env")
    assert resolve_secret("explicit") == b"explicit"
    assert resolve_secret(b"raw\x00bytes") == b"raw\x00bytes"
    assert not secret_file().exists()


def test_environment_comes_next(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_ENV, "from-env")
    assert resolve_secret(None) == b"from-env"
    assert resolve_secret("") == b"from-env"  # empty counts as not given
    assert not secret_file().exists()


def test_file_is_made_once_with_mode_0600(home: Path) -> None:
    first = resolve_secret(None)
    path = home / ".discoro" / "secret"
    assert secret_file() == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert len(first) == 64 and bytes.fromhex(first.decode())
    assert resolve_secret(None) == first == path.read_bytes().strip()
    assert sorted(p.name for p in path.parent.iterdir()) == ["secret"]  # no temporary left


def test_existing_file_is_used_and_empty_env_ignored(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = home / ".discoro" / "secret"
    path.parent.mkdir(mode=0o700)
    path.write_bytes(b"  copied-from-another-machine\n")
    path.chmod(0o600)
    monkeypatch.setenv(SECRET_ENV, "")
    assert resolve_secret(None) == b"copied-from-another-machine"


def test_empty_file_is_an_error_that_names_it(home: Path) -> None:
    path = home / ".discoro" / "secret"
    path.parent.mkdir(mode=0o700)
    path.write_bytes(b"\n")
    with pytest.raises(ValueError, match=r"secret file .* is empty"):
        resolve_secret(None)


def test_processes_starting_together_agree(tmp_path: Path) -> None:
    """Several processes that find no secret file all end up with the same secret."""
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": SRC}
    env.pop(SECRET_ENV, None)
    program = "from discoro.net.secret import resolve_secret; print(resolve_secret(None).decode())"
    procs = [
        subprocess.Popen([sys.executable, "-c", program], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
        for _ in range(6)
    ]  # fmt: skip
    outputs = {proc.communicate(timeout=30)[0].strip() for proc in procs}
    assert all(proc.returncode == 0 for proc in procs)
    assert outputs == {(tmp_path / ".discoro" / "secret").read_text().strip()}


def test_file_others_can_read_is_used_with_a_warning(home: Path) -> None:
    import logging

    path = home / ".discoro" / "secret"
    path.parent.mkdir(mode=0o700)
    path.write_bytes(b"shared\n")
    path.chmod(0o644)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("discoro")
    logger.addHandler(handler)
    try:
        assert resolve_secret(None) == b"shared"
    finally:
        logger.removeHandler(handler)
    assert [r.getMessage() for r in records] == [
        f"secret file {path} can be read by others (mode 644); chmod 600 it"
    ]
