"""``discoro.disasyncoro``: the original ``asyncoro.disasyncoro`` module path (later-versions
D1). 4.5.6 programs write ``import asyncoro.disasyncoro as asyncoro``; after changing that
to ``import discoro.disasyncoro as asyncoro`` every name they use is here: the core API, the
distributed one (`Location`, `PeerStatus`, `RCI`, ...) and ``MsgTimeout``; and the modules
``discoro``, ``httpd`` and ``asyncfile`` as attributes (loaded on first use), so
``asyncoro.discoro.MinPulseInterval`` and ``asyncoro.httpd.HTTPServer`` work through the
alias. Re-exports only."""

from __future__ import annotations

import importlib

import discoro.net  # noqa: F401  (installs the network layer, as the facade does)
from discoro.cluster.constants import MsgTimeout as MsgTimeout
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
from discoro.errors import HotSwapException as HotSwapException
from discoro.errors import MonitorException as MonitorException
from discoro.net.legacy_constants import MaxConnectionErrors as MaxConnectionErrors
from discoro.net.location import Location as Location
from discoro.net.location import PeerStatus as PeerStatus
from discoro.net.rci import RCI as RCI

__all__ = [
    "RCI", "AsynCoro", "AsynCoroSocket", "AsyncDBCursor", "AsyncSocket", "AsyncThreadPool",
    "CategorizeMessages", "Channel", "Condition", "Coro", "Event", "HotSwapException",
    "Location", "Lock", "Logger", "MaxConnectionErrors", "MetaSingleton", "MonitorException",
    "MsgTimeout", "PeerStatus", "RLock", "Semaphore", "Singleton", "deserialize", "logger",
    "serialize", "unserialize",
]  # fmt: skip

# the sibling modules reachable as attributes (the layer test allows these imports)
_SUBMODULES = {
    "asyncfile": "discoro.asyncfile",
    "discoro": "discoro.discoro",
    "httpd": "discoro.httpd",
}


def __getattr__(name: str) -> object:
    if name in _SUBMODULES:
        module = importlib.import_module(_SUBMODULES[name])
        globals()[name] = module
        return module
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
