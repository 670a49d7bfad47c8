"""The demo in a terminal: its progress bar (tqdm's, or its own plain line when tqdm is not
installed) is never garbled by the lines printed meanwhile (its own, remote output, log
lines): each shows on a terminal line of its own, with no remnant of the bar.

The demo runs on a pseudo-terminal; `screen_lines` replays what it wrote the way a terminal
would (carriage return, erase to end of line, overwrite) and gives the lines left on screen.
"""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from procs import SRC

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"
BAR = "remote coroutines done"
FINAL = "sum of the squares of 1..100 computed remotely: 338350 (expected 338350)"


def screen_lines(raw: str) -> list[str]:
    """The lines a terminal shows after ``raw`` (CR, LF, ESC[K and plain text only)."""
    lines: list[str] = []
    line: list[str] = []
    cursor = 0
    for token in re.findall(r"\x1b\[[0-9;]*[A-Za-z]|.", raw, re.DOTALL):
        if token == "\r":
            cursor = 0
        elif token == "\n":
            lines.append("".join(line).rstrip())
            line, cursor = [], 0
        elif token == "\x1b[K":
            del line[cursor:]
        elif token.startswith("\x1b["):
            continue  # no other sequences are expected from one bar
        else:
            if cursor < len(line):
                line[cursor] = token
            else:
                line.append(token)
            cursor += 1
    if line:
        lines.append("".join(line).rstrip())
    return lines


def run_on_a_terminal(tmp_path: Path, hide_tqdm: bool) -> str:
    """Run the demo with stdout and stderr on one pseudo-terminal; all it wrote."""
    path = [SRC]
    if hide_tqdm:
        blocker = tmp_path / "hide" / "tqdm"
        blocker.mkdir(parents=True)
        (blocker / "__init__.py").write_text("raise ImportError('hidden by the test')\n")
        path.insert(0, str(blocker.parent))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(path), PYTHONUNBUFFERED="1")
    env.pop("DISCORO_SECRET", None)
    main, child = os.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, str(DEMO)], stdin=subprocess.DEVNULL, stdout=child, stderr=child,
        cwd=tmp_path, env=env,
    )  # fmt: skip
    os.close(child)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert proc.wait(10) == 0, b"".join(chunks).decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(main)
    return b"".join(chunks).decode(errors="replace")


@pytest.mark.timeout(90)
@pytest.mark.parametrize("hide_tqdm", [False, True], ids=["tqdm", "plain"])
def test_lines_show_above_the_progress_bar(tmp_path: Path, hide_tqdm: bool) -> None:
    raw = run_on_a_terminal(tmp_path, hide_tqdm)
    assert "\x1b[K" in raw if hide_tqdm else "coro/s" in raw  # the bar was drawn
    screen = screen_lines(raw)
    assert FINAL in screen, screen
    remote = [
        line for line in screen if re.fullmatch(r"\[127\.0\.0\.1:\d+\] summed 50 squares", line)
    ]
    status = [
        line for line in screen
        if re.fullmatch(r"  status: (process ready: \S+|created \S+|\S+ finished with None)", line)
    ]  # fmt: skip
    assert len(remote) == 2 and len(status) == 6, screen  # whole lines: no remnant of the bar
    assert all(line.startswith(BAR) for line in screen if BAR in line), screen
    assert "Traceback" not in raw
