"""discoro: distributed communicating processes.

The facade: it re-exports the public API of the original ``asyncoro``,
``asyncoro.disasyncoro`` and ``asyncoro.discoro`` modules, so ``import discoro`` and
``import discoro as asyncoro`` both serve programs written for the original.
"""

from discoro import net as _net  # noqa: F401  (installs the network layer)
from discoro import web as _web  # noqa: F401  (installs the status page)
from discoro.cluster.computation import Computation as Computation
from discoro.cluster.constants import MaxPulseInterval as MaxPulseInterval
from discoro.cluster.constants import MinPulseInterval as MinPulseInterval
from discoro.cluster.constants import MsgTimeout as MsgTimeout
from discoro.cluster.local import local_cluster as local_cluster
from discoro.cluster.scheduler import Scheduler as Scheduler
from discoro.cluster.status import CoroInfo as CoroInfo
from discoro.cluster.status import DiscoroStatus as DiscoroStatus
from discoro.cluster.status import StatusMessage as StatusMessage
from discoro.core.categorize import CategorizeMessages as CategorizeMessages
from discoro.core.channel import Channel as Channel
from discoro.core.conditions import Condition as Condition
from discoro.core.conditions import Event as Event
from discoro.core.conditions import Semaphore as Semaphore
from discoro.core.coro import Coro as Coro
from discoro.core.kernel import AsynCoro as AsynCoro
from discoro.core.locks import Lock as Lock
from discoro.core.locks import RLock as RLock
from discoro.core.log import logger as logger
from discoro.core.serialize import serialize as serialize
from discoro.core.serialize import unserialize as unserialize
from discoro.core.singleton import MetaSingleton as MetaSingleton
from discoro.core.threadpool import AsyncDBCursor as AsyncDBCursor
from discoro.core.threadpool import AsyncThreadPool as AsyncThreadPool
from discoro.errors import DiscoroError as DiscoroError
from discoro.errors import HotSwapException as HotSwapException
from discoro.errors import MonitorException as MonitorException
from discoro.errors import RemoteError as RemoteError
from discoro.net.location import Location as Location
from discoro.net.location import PeerStatus as PeerStatus
from discoro.net.rci import RCI as RCI
