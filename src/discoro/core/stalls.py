"""Silence detectors discount their own process's stalls (DESIGN decision 7).

A detector checks every ``period`` seconds how long the other side has been silent. If the
check itself runs far later than its period, our own event loop was blocked (a job computing
without yielding, a machine swapping): the other side's bytes may be waiting unread in our
socket buffers, so its silence says nothing. Such a late check gives the other side a fresh
window instead of declaring it silent. Every silence rule of discoro uses `ran_late`: links
(`discoro.net.link`), a server watching its scheduler, the scheduler watching its processes
and a client watching its scheduler.
"""

from __future__ import annotations

#: A check that runs more than STALL_FACTOR periods (plus STALL_SLACK seconds) after the
#: previous one ran late: the loop was blocked meanwhile.
STALL_FACTOR = 2.0
STALL_SLACK = 0.5


def ran_late(previous: float, now: float, period: float) -> bool:
    """Whether a check meant to run every ``period`` seconds, last run at ``previous``, runs
    so late at ``now`` (same monotonic clock) that our own loop must have been blocked."""
    return now - previous > STALL_FACTOR * period + STALL_SLACK
