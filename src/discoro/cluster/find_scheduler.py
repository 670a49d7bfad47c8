"""Finding the scheduler a `Computation` submits to: by discovery, or at a given location
that may not answer yet (a batch script starts the scheduler in the background and the client
right after); either way the search ends within the computation's ``timeout``."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from discoro.cluster.constants import SCHEDULER_NAME
from discoro.core.coro import Coro
from discoro.core.log import logger

if TYPE_CHECKING:
    from discoro.net.location import Location


async def find_scheduler(location: Location | None, timeout: float) -> object:
    """The scheduler coroutine, found within ``timeout``: by discovery, or asked at
    ``location`` again and again, since a batch script may start it a moment before the
    client (a refused connection is no answer)."""
    if location is None:
        return await Coro.locate(SCHEDULER_NAME, None, timeout=timeout)
    deadline = time.monotonic() + timeout
    pause = 0.1
    while True:
        found = await Coro.locate(SCHEDULER_NAME, location, timeout=timeout)
        left = deadline - time.monotonic()
        if found is not None or left <= 0:
            return found
        if pause == 0.1:
            logger.info("no scheduler at %s yet; asking again for %.0f s", location, left)
        await asyncio.sleep(min(pause, left))
        pause = min(pause * 2, 1.0)
