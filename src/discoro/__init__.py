"""discoro: distributed communicating processes.

The facade: it re-exports the public API of the original ``asyncoro``,
``asyncoro.disasyncoro`` and ``asyncoro.discoro`` modules, so ``import discoro`` and
``import discoro as asyncoro`` both serve programs written for the original.

The exports are loaded on first use (PEP 562 module ``__getattr__``): importing a submodule
(the node program imports only ``discoro.cli.node`` and ``discoro.cluster.procdir``) does
not pay for the whole runtime. Touching any export first installs the network layer and the
status page hook, as importing this package used to.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    __version__: str  # from the installed package's metadata, on first use

    from discoro import asyncfile as asyncfile
    from discoro import disasyncoro as disasyncoro
    from discoro import discoro as discoro
    from discoro import httpd as httpd
    from discoro.cluster.allocation import DiscoroNodeAllocate as DiscoroNodeAllocate
    from discoro.cluster.computation import Computation as Computation
    from discoro.cluster.constants import MaxPulseInterval as MaxPulseInterval
    from discoro.cluster.constants import MinPulseInterval as MinPulseInterval
    from discoro.cluster.constants import MsgTimeout as MsgTimeout
    from discoro.cluster.local import local_cluster as local_cluster
    from discoro.cluster.nodeinfo import DiscoroNodeAvailInfo as DiscoroNodeAvailInfo
    from discoro.cluster.nodeinfo import DiscoroNodeInfo as DiscoroNodeInfo
    from discoro.cluster.scheduler import Scheduler as Scheduler
    from discoro.cluster.server_state import SchedulerLost as SchedulerLost
    from discoro.cluster.ssh import SSHCluster as SSHCluster
    from discoro.cluster.ssh import SSHClusterError as SSHClusterError
    from discoro.cluster.status import CoroInfo as CoroInfo
    from discoro.cluster.status import CoroInfo as DiscoroCoroInfo
    from discoro.cluster.status import DiscoroStatus as DiscoroStatus
    from discoro.cluster.status import StatusMessage as StatusMessage
    from discoro.core.asyncsocket import AsynCoroSocket as AsynCoroSocket
    from discoro.core.asyncsocket import AsyncSocket as AsyncSocket
    from discoro.core.categorize import CategorizeMessages as CategorizeMessages
    from discoro.core.channel import Channel as Channel
    from discoro.core.conditions import Condition as Condition
    from discoro.core.conditions import Event as Event
    from discoro.core.conditions import Semaphore as Semaphore
    from discoro.core.coro import Coro as Coro
    from discoro.core.kernel import AsynCoro as AsynCoro
    from discoro.core.locks import Lock as Lock
    from discoro.core.locks import RLock as RLock
    from discoro.core.log import Logger as Logger
    from discoro.core.log import logger as logger
    from discoro.core.serialize import deserialize as deserialize
    from discoro.core.serialize import serialize as serialize
    from discoro.core.serialize import unserialize as unserialize
    from discoro.core.singleton import MetaSingleton as MetaSingleton
    from discoro.core.singleton import Singleton as Singleton
    from discoro.core.threadpool import AsyncDBCursor as AsyncDBCursor
    from discoro.core.threadpool import AsyncThreadPool as AsyncThreadPool
    from discoro.errors import DiscoroError as DiscoroError
    from discoro.errors import HotSwapException as HotSwapException
    from discoro.errors import MonitorException as MonitorException
    from discoro.errors import RemoteError as RemoteError
    from discoro.errors import RunError as RunError
    from discoro.net.legacy_constants import MaxConnectionErrors as MaxConnectionErrors
    from discoro.net.location import Location as Location
    from discoro.net.location import PeerStatus as PeerStatus
    from discoro.net.rci import RCI as RCI

# public submodules, loaded on first attribute access (``asyncoro.asyncfile.AsyncPipe``,
# ``asyncoro.httpd.HTTPServer``)
_SUBMODULES: frozenset[str] = frozenset({"asyncfile", "disasyncoro", "discoro", "httpd"})

# export name -> defining module (the name is the same there)
_EXPORTS: dict[str, str] = {
    "Computation": "discoro.cluster.computation",
    "DiscoroNodeAllocate": "discoro.cluster.allocation",
    "DiscoroNodeAvailInfo": "discoro.cluster.nodeinfo",
    "DiscoroNodeInfo": "discoro.cluster.nodeinfo",
    "MaxPulseInterval": "discoro.cluster.constants",
    "MinPulseInterval": "discoro.cluster.constants",
    "MsgTimeout": "discoro.cluster.constants",
    "local_cluster": "discoro.cluster.local",
    "Scheduler": "discoro.cluster.scheduler",
    "SchedulerLost": "discoro.cluster.server_state",
    "SSHCluster": "discoro.cluster.ssh",
    "SSHClusterError": "discoro.cluster.ssh",
    "CoroInfo": "discoro.cluster.status",
    "DiscoroStatus": "discoro.cluster.status",
    "StatusMessage": "discoro.cluster.status",
    "AsynCoroSocket": "discoro.core.asyncsocket",
    "AsyncSocket": "discoro.core.asyncsocket",
    "CategorizeMessages": "discoro.core.categorize",
    "Channel": "discoro.core.channel",
    "Condition": "discoro.core.conditions",
    "Event": "discoro.core.conditions",
    "Semaphore": "discoro.core.conditions",
    "Coro": "discoro.core.coro",
    "AsynCoro": "discoro.core.kernel",
    "Lock": "discoro.core.locks",
    "RLock": "discoro.core.locks",
    "Logger": "discoro.core.log",
    "logger": "discoro.core.log",
    "deserialize": "discoro.core.serialize",
    "serialize": "discoro.core.serialize",
    "unserialize": "discoro.core.serialize",
    "MetaSingleton": "discoro.core.singleton",
    "Singleton": "discoro.core.singleton",
    "AsyncDBCursor": "discoro.core.threadpool",
    "AsyncThreadPool": "discoro.core.threadpool",
    "DiscoroError": "discoro.errors",
    "HotSwapException": "discoro.errors",
    "MonitorException": "discoro.errors",
    "RemoteError": "discoro.errors",
    "RunError": "discoro.errors",
    "MaxConnectionErrors": "discoro.net.legacy_constants",
    "Location": "discoro.net.location",
    "PeerStatus": "discoro.net.location",
    "RCI": "discoro.net.rci",
}

__all__ = [
    "RCI", "AsynCoro", "AsynCoroSocket", "AsyncDBCursor", "AsyncSocket", "AsyncThreadPool",
    "CategorizeMessages", "Channel", "Computation", "Condition", "Coro", "CoroInfo",
    "DiscoroCoroInfo", "DiscoroError", "DiscoroNodeAllocate", "DiscoroNodeAvailInfo",
    "DiscoroNodeInfo", "DiscoroStatus", "Event", "HotSwapException", "Location", "Lock",
    "Logger", "MaxConnectionErrors", "MaxPulseInterval", "MetaSingleton", "MinPulseInterval",
    "MonitorException", "MsgTimeout", "PeerStatus", "RLock", "RemoteError", "RunError",
    "SSHCluster", "SSHClusterError", "Scheduler", "SchedulerLost", "Semaphore", "Singleton",
    "StatusMessage", "asyncfile", "deserialize", "disasyncoro", "discoro", "httpd",
    "local_cluster", "logger",
    "serialize", "unserialize",
]  # fmt: skip


def _install_layers() -> None:
    importlib.import_module("discoro.net")  # installs the network layer
    importlib.import_module("discoro.web")  # installs the status page


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("discoro")
    except metadata.PackageNotFoundError:  # a source tree that was not installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()[name] = version = _version()
        return version
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")  # the import sets the global
    name_there = "CoroInfo" if name == "DiscoroCoroInfo" else name  # later versions' name
    module = _EXPORTS.get(name_there)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _install_layers()
    value = getattr(importlib.import_module(module), name_there)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
