"""Which event loop the kernel runs (`discoro.core.eventloop`): uvloop by default where it is
installed, ``DISCORO_LOOP=asyncio`` forces asyncio's own, a bad value is a clear error. Each
case starts a fresh interpreter, as a user's program would."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

UVLOOP = importlib.util.find_spec("uvloop") is not None
PROGRAM = """
import discoro
kernel = discoro.AsynCoro()
print(type(kernel.loop).__module__.split('.')[0], flush=True)
kernel.terminate()
"""


def _loop_module(value: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DISCORO_LOOP"}
    if value is not None:
        env["DISCORO_LOOP"] = value
    return subprocess.run(
        [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("value", [None, "", "auto", "AUTO "])
def test_default_is_uvloop_where_installed(value):
    done = _loop_module(value)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("uvloop" if UVLOOP else "asyncio")


def test_asyncio_can_be_forced():
    done = _loop_module("asyncio")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "asyncio"


def test_uvloop_can_be_required():
    done = _loop_module("uvloop")
    if UVLOOP:
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "uvloop"
    else:
        assert done.returncode != 0
        assert "DISCORO_LOOP=uvloop but uvloop is not installed" in done.stderr


def test_unknown_value_names_the_choices():
    done = _loop_module("tokio")
    assert done.returncode != 0
    assert "DISCORO_LOOP='tokio': expected one of auto, asyncio, uvloop" in done.stderr


def test_uvloop_is_a_dependency_on_linux_and_macos():
    from importlib.metadata import requires

    wanted = [r for r in requires("discoro") or [] if r.startswith("uvloop") and "extra" not in r]
    assert wanted, "uvloop is not a regular dependency"
    assert "linux" in wanted[0] and "darwin" in wanted[0]
