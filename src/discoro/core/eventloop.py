"""Which event loop a kernel runs: uvloop where it is installed, asyncio's own otherwise.

uvloop is a regular dependency on Linux and macOS (it takes ~20-30 % off a network round
trip, see bench/RESULTS.md); elsewhere, or when it is missing, asyncio's loop is used with no
message. ``DISCORO_LOOP`` (read each time a kernel starts) forces a choice: ``asyncio`` for
asyncio's loop (to compare, or to rule uvloop out when hunting a bug), ``uvloop`` to require
uvloop (ImportError when it is not installed), empty or ``auto`` for the default. Any other
value is a ValueError that names the accepted ones.
"""

from __future__ import annotations

import asyncio
import os

__all__ = ["LOOP_ENV", "loop_choice", "new_event_loop"]

LOOP_ENV = "DISCORO_LOOP"
_CHOICES = ("auto", "asyncio", "uvloop")


def loop_choice() -> str:
    """The loop ``DISCORO_LOOP`` asks for: "auto", "asyncio" or "uvloop"."""
    choice = os.environ.get(LOOP_ENV, "").strip().lower() or "auto"
    if choice not in _CHOICES:
        raise ValueError(
            f"{LOOP_ENV}={os.environ[LOOP_ENV]!r}: expected one of {', '.join(_CHOICES)}"
        )
    return choice


def new_event_loop() -> asyncio.AbstractEventLoop:
    """A new event loop of the kind `loop_choice` says."""
    choice = loop_choice()
    if choice == "asyncio":
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise ImportError(f"{LOOP_ENV}=uvloop but uvloop is not installed") from None
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop
