"""No lost wake-up across a process's transport thread (issue 9; `discoro.net.threaded`,
`discoro.net.transport_thread`): many small round trips to a peer in thread mode, with random
pauses on both sides, and replies sent both by the peer's coroutine (core loop -> transport
queue) and by a plain thread of the peer (another thread -> the same queue). A wake-up lost on
either hop leaves a request or a reply sitting in a queue: the client's ``receive`` then times
out and the test names the round trip. Every reply must arrive once, in order.

The pauses make each side find the other asleep, busy (``time.sleep`` blocks the peer's loop
while its transport thread keeps reading) or in the middle of a batch, in random order; the
seed is printed so a failure can be replayed.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any

import pytest

from discoro import AsynCoro, Coro, Location
from netpeers import run
from procs import PeerProcess

pytestmark = pytest.mark.timeout(180)

ROUNDS = 2500
REPLY_TIMEOUT = 20.0  # a lost wake-up, not a slow machine, is what runs out of this

PEER = """
import os
import queue
import random
import sys
import threading
import time

os.environ["DISCORO_NET_THREAD"] = "1"
import discoro
from discoro import Coro
from discoro.net.runtime import network_thread

kernel = discoro.AsynCoro(node="127.0.0.1", udp_port=int(sys.argv[1]), secret=sys.argv[2])
assert network_thread(kernel) is not None
rng = random.Random(int(sys.argv[3]))
work = queue.SimpleQueue()


def worker():  # replies from a thread that is no loop's
    while True:
        client, number = work.get()
        if rng.random() < 0.3:
            time.sleep(rng.choice((1e-5, 2e-4)))
        client.send(("thread", number))


def echo(coro=None):
    while True:
        msg = yield coro.receive()
        if msg == "done":
            print("DONE", flush=True)
            continue
        client, how, numbers = msg
        pause = rng.choice((0, 0, 0, 5e-5, 5e-4))
        if pause and rng.random() < 0.5:
            time.sleep(pause)  # the loop is blocked: the transport batches what comes
        elif pause:
            yield coro.sleep(pause)
        for number in numbers:
            if how == "thread":
                work.put((client, number))
            else:
                client.send(("coro", number))


threading.Thread(target=worker, daemon=True).start()
assert Coro(echo).register("echo") == 0
print("READY", kernel.location.port, flush=True)
sys.stdin.readline()
"""


def test_round_trips_with_random_pauses_lose_no_wakeup(
    net_kernel: AsynCoro, cluster_secret: str, udp_port: int
) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    print("seed", seed)
    rng = random.Random(seed)
    with PeerProcess(PEER, str(udp_port), cluster_secret, str(seed)) as peer:
        port = int(peer.expect(r"^READY (\d+)$", timeout=30)[1])

        def client(coro: Any = None) -> Any:
            echo = yield Coro.locate("echo", Location("127.0.0.1", port), timeout=20)
            number = 0
            for round_ in range(ROUNDS):
                how = rng.choice(("coro", "coro", "thread"))
                burst = list(range(number, number + rng.choice((1, 1, 2, 3))))
                number += len(burst)
                echo.send((coro, how, burst))
                pause = rng.choice((0, 0, 0, 5e-5, 5e-4))
                if pause and rng.random() < 0.5:
                    time.sleep(pause)
                elif pause:
                    yield coro.sleep(pause)
                for expected in burst:
                    reply = yield coro.receive(timeout=REPLY_TIMEOUT)
                    if reply != (how, expected):
                        return f"round {round_}: expected {(how, expected)!r}, got {reply!r}"
            extra = yield coro.receive(timeout=0.5)  # nothing twice
            echo.send("done")
            return number if extra is None else f"an extra reply {extra!r}"

        result = run(client, timeout=170)
        assert isinstance(result, int) and result >= ROUNDS, (seed, result, peer.output[-5:])
        peer.expect(r"^DONE$", timeout=20)
