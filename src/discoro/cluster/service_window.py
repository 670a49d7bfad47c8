"""When a node serves: the daily window of ``--service_start``, ``--service_stop`` and
``--service_end`` (later versions, section 5), as pure time arithmetic (no clock, no I/O).

Times are times of day on the local clock, ``HH:MM`` or ``HH:MM:SS``. The window repeats
daily and may run across midnight (22:00 to 06:00 is a night window): the three times are
read in cyclic order from the start, so the rule "start < stop < end" holds within the
24 hours after ``start``.

Phases (`Phase`):
- SERVING from ``start`` until ``stop`` (or ``end`` without ``stop``): server processes run
  and take computations.
- STOPPING from ``stop`` until ``end`` (or until the next start without ``end``): servers
  take no more computations or jobs; each closes when its running jobs are done.
- OFF from ``end`` until the next start: no server process runs (the node ignores peers and
  refuses reservations); jobs still running at ``end`` are terminated.

Rules: at least one of ``stop`` and ``end`` is needed; without ``start`` the window starts at
the time the node starts; the three times are distinct.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

DAY = 24 * 3600
_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


class Phase(enum.Enum):
    SERVING = "serving"
    STOPPING = "stopping"
    OFF = "off"


def parse_time_of_day(text: str) -> int:
    """Seconds after midnight of ``HH:MM`` or ``HH:MM:SS`` (ValueError naming the text)."""
    match = _TIME.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a time of day (HH:MM or HH:MM:SS)")
    hours, minutes, seconds = int(match[1]), int(match[2]), int(match[3] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise ValueError(f"{text!r} is not a time of day (hours 0-23, minutes 0-59)")
    return hours * 3600 + minutes * 60 + seconds


def format_time_of_day(seconds: int) -> str:
    seconds %= DAY
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@dataclass(frozen=True)
class ServiceWindow:
    """A daily window (all in seconds after midnight)."""

    start: int
    stop: int | None
    end: int | None

    @classmethod
    def from_options(
        cls, start: str | None, stop: str | None, end: str | None, now: int
    ) -> ServiceWindow | None:
        """The window the options describe (None: no window, always serving); ``now`` is the
        time of day the node starts (the start when none is given). ValueError says what is
        wrong, naming the option."""
        if start is None and stop is None and end is None:
            return None
        if stop is None and end is None:
            raise ValueError("--service_start needs --service_stop or --service_end")
        times: dict[str, int] = {}
        for option, text in (("service_start", start), ("service_stop", stop)):
            if text is not None:
                times[option] = _parse(option, text)
        if end is not None:
            times["service_end"] = _parse("service_end", end)
        window = cls(
            times.get("service_start", now), times.get("service_stop"), times.get("service_end")
        )
        window._check()
        return window

    def _check(self) -> None:
        offsets = [("--service_stop", self.stop), ("--service_end", self.end)]
        given = [(name, (t - self.start) % DAY) for name, t in offsets if t is not None]
        for name, offset in given:
            if offset == 0:
                raise ValueError(f"{name} is the same time as --service_start")
        if len(given) == 2 and given[0][1] >= given[1][1]:
            raise ValueError(
                "--service_stop must come before --service_end "
                "(in the 24 hours after --service_start)"
            )

    def phase(self, now: int) -> tuple[Phase, int]:
        """The phase at time of day ``now`` and the seconds until it changes (> 0)."""
        offset = (now - self.start) % DAY
        boundaries = [(Phase.SERVING, 0)]
        if self.stop is not None:
            boundaries.append((Phase.STOPPING, (self.stop - self.start) % DAY))
        if self.end is not None:
            boundaries.append((Phase.OFF, (self.end - self.start) % DAY))
        current = Phase.SERVING
        following = DAY
        for phase, at in boundaries:
            if at <= offset:
                current = phase
            else:
                following = at
                break
        return current, following - offset

    def describe(self) -> str:
        parts = [f"from {format_time_of_day(self.start)}"]
        if self.stop is not None:
            parts.append(f"stop taking work at {format_time_of_day(self.stop)}")
        if self.end is not None:
            parts.append(f"end at {format_time_of_day(self.end)}")
        return ", ".join(parts)


def _parse(option: str, text: str) -> int:
    try:
        return parse_time_of_day(text)
    except ValueError as exc:
        raise ValueError(f"--{option}: {exc}") from None
