"""``discoronode --serve N``: count the computations a node serves (no I/O, no processes).

`ServeCount` hears which server process installed or closed which computation (by uid) and
decides: when the Nth distinct computation is installed anywhere, every process is told to
take no other (`installed` returns True: retire them); when none of those is installed any
more, the node is done (`closed` returns True). A process that exits forgets what it had
installed (`gone`). ``limit`` -1 counts without ever retiring or finishing.
"""

from __future__ import annotations


class ServeCount:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.served: set[str] = set()  # computations installed by any process
        self.running: dict[int, str] = {}  # process index -> the computation it has now

    @property
    def reached(self) -> bool:
        return self.limit >= 0 and len(self.served) >= self.limit

    def remaining(self) -> int:
        """How many more computations a (re)started process may take (-1: no limit)."""
        return -1 if self.limit < 0 else max(0, self.limit - len(self.served))

    def installed(self, index: int, uid: str) -> bool:
        """Process ``index`` installed ``uid``; whether the limit was reached just now."""
        self.running[index] = uid
        if uid in self.served:
            return False
        self.served.add(uid)
        return self.reached

    def closed(self, index: int, uid: str) -> bool:
        """Process ``index`` closed ``uid``; whether the node has served all it should."""
        if self.running.get(index) == uid:
            del self.running[index]
        return self.reached and not self.running

    def gone(self, index: int) -> bool:
        """Process ``index`` exited (its computation with it); as `closed`."""
        self.running.pop(index, None)
        return self.reached and not self.running
