"""Node figures a server process reports with its pulses (``ServerPulse.load``).

`LoadMeter.measure()` returns ``{"cpu", "memory", "disk", "swap"}`` in percent used (floats,
or None when psutil cannot tell), ``memory_avail`` and ``disk_free`` in bytes (or None), plus
the reporting process's ``name``, its node's ``node_name``, the node's ``platform`` string and
its number of server processes ``servers`` (from `SERVERS_ENV`, set by the node program; None
when started otherwise): what `discoro.cluster.nodeinfo` and node allocations need.

It is called once per pulse interval, so it must stay cheap: psutil is imported lazily (a
process that never pulses never loads it), CPU use is measured without blocking
(``cpu_percent(None)``: the use since the previous call; the first call primes the counter
and reads 0.0), and disk use is of the filesystem holding the working directory. Any
failure yields None for that figure, never an exception: a pulse must always go out.
"""

from __future__ import annotations

import os
import platform
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from types import ModuleType

FIGURES = ("cpu", "memory", "disk", "swap")  # percent used (status pages show these)
SERVERS_ENV = "DISCORO_NODE_SERVERS"  # the node program tells its servers how many they are


def _node_servers() -> int | None:
    try:
        count = int(os.environ.get(SERVERS_ENV, ""))
    except ValueError:
        return None
    return count if count > 0 else None


_platform_lock = threading.Lock()
_platform_text: list[str] = []  # `platform.platform()`, once found


def platform_text() -> str:
    """This machine's platform string (`platform.platform`), found once. Not at import: on
    Linux it runs ``uname -p`` in a child process (~10 ms), which every node and server
    process start would pay; a server finds it on a thread meanwhile (`find_platform`)."""
    with _platform_lock:
        if not _platform_text:
            _platform_text.append(platform.platform())
        return _platform_text[0]


def find_platform() -> None:
    """Find `platform_text` on a daemon thread now, so the first pulse need not wait."""
    threading.Thread(target=platform_text, name="discoro-platform", daemon=True).start()


class LoadMeter:
    """Measures this node's CPU, memory, disk and swap use for the pulses of one process."""

    def __init__(self, workdir: str | Path, name: str = "", node_name: str = "") -> None:
        self.workdir = str(workdir)
        self.name = name
        self.node_name = node_name
        self._psutil: ModuleType | None = None
        self._available: bool | None = None  # None: not tried yet

    def _module(self) -> ModuleType | None:
        if self._available is None:
            try:
                import psutil
            except ImportError:
                self._available = False
            else:
                self._psutil = psutil
                self._available = True
                psutil.cpu_percent(None)  # prime: the next call measures since now
        return self._psutil if self._available else None

    def measure(self) -> dict[str, Any]:
        figures: dict[str, Any] = dict.fromkeys(FIGURES)
        figures["name"] = self.name
        figures["node_name"] = self.node_name
        figures["platform"] = platform_text()
        figures["servers"] = _node_servers()
        psutil = self._module()
        if psutil is None:
            return figures
        readers: dict[str, Callable[[], float]] = {
            "cpu": lambda: psutil.cpu_percent(None),
            "memory": lambda: psutil.virtual_memory().percent,
            "disk": lambda: psutil.disk_usage(self.workdir).percent,
            "swap": lambda: psutil.swap_memory().percent,
            "memory_avail": lambda: psutil.virtual_memory().available,
            "disk_free": lambda: psutil.disk_usage(self.workdir).free,
        }
        for key, read in readers.items():
            try:
                figures[key] = float(read())
            except Exception:
                figures[key] = None
        return figures
