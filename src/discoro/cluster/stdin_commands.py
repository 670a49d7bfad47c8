"""Commands typed on a program's stdin (``discoronode``, ``discoro``): one per line.

`read_commands` starts a daemon thread that reads stdin and calls ``on_command(word, rest)``
for each line whose first word is one of ``commands`` (an empty line counts as ``empty``,
when given). Other lines are answered with a one-line hint on stderr.

Rules: at the end of stdin (unless ``on_eof`` is given), or if stdin is closed or a terminal
we do not own (a background job), only signals reach the program: nothing polls or spins. A
program run with ``--daemon`` calls nothing here (unless an SSH session needs its end).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Collection


def stdin_usable() -> bool:
    """Whether stdin can be read without stopping us (a terminal of a background job)."""
    stream = sys.stdin
    if stream is None or stream.closed:
        return False
    try:
        if stream.isatty():
            if os.tcgetpgrp(stream.fileno()) != os.getpgrp():
                return False  # started in the background: reading would stop us (SIGTTIN)
            signal.signal(signal.SIGTTIN, signal.SIG_IGN)  # moved to the background: EIO
    except (OSError, ValueError, AttributeError):
        return False
    return True


def read_commands(
    program: str,
    commands: Collection[str],
    on_command: Callable[[str, str], None],
    empty: str | None = None,
    on_eof: Callable[[str], None] | None = None,
) -> bool:
    """Read commands from stdin in a daemon thread (see the module docstring); whether
    stdin is read at all. ``on_eof("end of stdin")``, if given, is called at the end of
    stdin or when it fails (``--ssh-session``: the session is gone)."""
    if not stdin_usable():
        return False
    stream = sys.stdin

    def watch() -> None:
        try:
            for line in stream:
                word, _, rest = line.strip().partition(" ")
                word = word.lower()
                if not word and empty is not None:
                    on_command(empty, "")
                elif word in commands:
                    on_command(word, rest.strip())
                elif word:
                    print(
                        f"{program}: unknown command {word!r} (commands: "
                        f"{', '.join(sorted(commands))})",
                        file=sys.stderr,
                        flush=True,
                    )
        except (OSError, ValueError):
            pass  # stdin went away under us
        if on_eof is not None:
            on_eof("end of stdin")

    threading.Thread(target=watch, name="discoro-stdin", daemon=True).start()
    return True
