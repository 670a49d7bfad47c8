"""Room for many links: a scheduler holds one TCP connection per server process.

Linux's usual soft limit of 1,024 open files would stop a scheduler at about a thousand
server processes (EMFILE on accept and dial). `raise_fd_limit` lifts the soft limit to the
hard one (capped at `FD_TARGET`) once per process; it never lowers a limit and never fails:
where the platform has no limits or refuses, things stay as they were.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("discoro")

#: open files a scheduler asks for (each server process is one link)
FD_TARGET = 65536


def raise_fd_limit(target: int = FD_TARGET) -> int:
    """Raise this process's soft open-file limit towards ``target``; the soft limit now
    (-1 where unknown)."""
    try:
        import resource
    except ImportError:  # not on this platform
        return -1
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = target if hard == resource.RLIM_INFINITY else min(target, hard)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            logger.debug("open file limit raised from %d to %d", soft, wanted)
            return wanted
        return int(soft)
    except (OSError, ValueError) as exc:
        logger.debug("open file limit left as it was: %s", exc)
        return -1
