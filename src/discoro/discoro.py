"""``discoro.discoro``: the original ``asyncoro.discoro`` module path (later-versions D1), so
``from discoro.discoro import *`` and ``asyncoro.discoro.MinPulseInterval`` (after
``import discoro as asyncoro``) work, in clients and inside shipped code. The union of the
seed's and the later versions' names; re-exports only."""

from __future__ import annotations

from discoro.cluster.allocation import DiscoroNodeAllocate as DiscoroNodeAllocate
from discoro.cluster.computation import Computation as Computation
from discoro.cluster.constants import MaxPulseInterval as MaxPulseInterval
from discoro.cluster.constants import MinPulseInterval as MinPulseInterval
from discoro.cluster.constants import MsgTimeout as MsgTimeout
from discoro.cluster.nodeinfo import DiscoroNodeAvailInfo as DiscoroNodeAvailInfo
from discoro.cluster.nodeinfo import DiscoroNodeInfo as DiscoroNodeInfo
from discoro.cluster.scheduler import Scheduler as Scheduler
from discoro.cluster.status import CoroInfo as CoroInfo
from discoro.cluster.status import CoroInfo as DiscoroCoroInfo
from discoro.cluster.status import DiscoroStatus as DiscoroStatus
from discoro.cluster.status import StatusMessage as StatusMessage

__all__ = [
    "Computation", "CoroInfo", "DiscoroCoroInfo", "DiscoroNodeAllocate",
    "DiscoroNodeAvailInfo", "DiscoroNodeInfo", "DiscoroStatus", "MaxPulseInterval",
    "MinPulseInterval", "MsgTimeout", "Scheduler", "StatusMessage",
]  # fmt: skip
