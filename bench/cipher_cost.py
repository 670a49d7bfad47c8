"""What the record cipher itself costs, apart from everything else on a round trip (bench only).

`net_bench.py --vs` compares whole trees, whose round trip on a loaded 2-core machine
varies by +-20 % from run to run; this measures the cipher alone, in seconds, with the
record sizes a round trip uses (a ~60-byte plaintext sealed with a 4-byte header as
associated data), AES-256-GCM (`discoro.wire.record.aes_gcm`) against the copying no-op
cipher of `noop_cipher_tree.py` (the very same code):

- hot: one call after another in a loop (best of 5 x ``--calls``), ns per call;
- ping-pong: two processes send a sealed record back and forth over a socketpair, each
  opening what it got and sealing its answer (2 seals + 2 opens per round trip, as on a
  discoro round trip); AES and no-op rounds alternate; the extra microseconds per round trip
  that AES costs, median of the paired rounds; also the medians of each `decrypt_into` and
  `encrypt` call as timed there, and of the work that follows an open. Between records a
  real process runs tens of microseconds of other code, which evicts the cipher's code and
  data from the caches (and the cipher evicts that code's): ``--work UNITS`` runs
  `python_work` after each received record, ``--evict BYTES`` writes that much memory.

    python bench/cipher_cost.py
    python bench/cipher_cost.py --work 3 --rounds 7 --trips 1500
    python bench/cipher_cost.py --evict 4194304
"""

from __future__ import annotations

import argparse
import collections
import decimal
import fractions
import heapq
import json
import os
import pickle
import re
import socket
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import noop_cipher_tree
from discoro.wire.record import aes_gcm

_noop: dict[str, Any] = {}
exec(noop_cipher_tree._NOOP, _noop)  # the same no-op cipher the no-op tree uses
KEY = bytes(range(32))
HEADER = (76).to_bytes(4, "big")  # lane 0, 60 + 16 bytes
PLAINTEXT = bytes(range(60))
DIRECTION = b"c2s\0"


def make(kind: str) -> Any:
    return aes_gcm(KEY) if kind == "aes" else _noop["aes_gcm"](KEY)


def hot(kind: str, calls: int) -> tuple[float, float]:
    """Best-of-5 ns per `encrypt` and per `decrypt_into` (memoryview in and out)."""
    cipher = make(kind)
    nonce = DIRECTION + bytes(8)
    sealed = memoryview(bytearray(cipher.encrypt(nonce, PLAINTEXT, HEADER)))
    room = memoryview(bytearray(len(PLAINTEXT)))
    best = [float("inf"), float("inf")]
    for _ in range(5):
        start = time.perf_counter_ns()
        for _ in range(calls):
            cipher.encrypt(nonce, PLAINTEXT, HEADER)
        middle = time.perf_counter_ns()
        for _ in range(calls):
            cipher.decrypt_into(nonce, sealed, HEADER, room)
        end = time.perf_counter_ns()
        best = [min(best[0], (middle - start) / calls), min(best[1], (end - middle) / calls)]
    return best[0], best[1]


_SAMPLE = {"op": "send", "to": ("127.0.0.1", 9705), "args": [1, 2.5, "abc", (3, 4), b"v" * 30]}
_PATTERN = re.compile(r"(\w+)=(\d+)")


def python_work(units: int) -> None:
    """A stand-in for what a process does between two records: a little of many things
    (pickle, msgpack-like JSON, regular expressions, dicts, heaps, decimals), so it runs
    through much of the interpreter's code, as a real process does."""
    for _ in range(units):
        pickle.loads(pickle.dumps(_SAMPLE))
        json.loads(json.dumps({"a": [1, 2, 3], "b": "x"}))
        _PATTERN.findall("a=1 b=22 c=333")
        table = collections.OrderedDict((i, str(i)) for i in range(20))
        table.move_to_end(3)
        heap = [5, 3, 8, 1]
        heapq.heapify(heap)
        decimal.Decimal("1.25") * 3 + decimal.Decimal(fractions.Fraction(3, 7).numerator)
        f"{_SAMPLE['op']}:{len(table)}".encode().decode()


class Side:
    """One end of the ping-pong, with the time of each cipher call and of the work after
    each received record (ns)."""

    def __init__(self, sock: socket.socket, kind: str, evict: int, work: int) -> None:
        self.sock, self.cipher, self.work = sock, make(kind), work
        self.junk, self.zeros = bytearray(evict), bytes(len(range(0, evict, 64)))
        self.inbox = bytearray(4096)
        self.room = memoryview(bytearray(len(PLAINTEXT)))
        self.trips: list[int] = []
        self.opens: list[int] = []
        self.seals: list[int] = []
        self.works: list[int] = []

    def receive(self, counter: int) -> None:
        clock = time.perf_counter_ns
        size = self.sock.recv_into(self.inbox)
        if not size:
            raise RuntimeError("the other end closed (it failed: see its traceback)")
        view = memoryview(self.inbox)
        nonce = DIRECTION + counter.to_bytes(8, "big")
        sealed, header = view[4:size], bytes(view[:4])
        start = clock()
        self.cipher.decrypt_into(nonce, sealed, header, self.room)
        middle = clock()
        if self.junk:
            self.junk[::64] = self.zeros
        python_work(self.work)
        self.opens.append(middle - start)
        self.works.append(clock() - middle)

    def send(self, counter: int) -> None:
        nonce = DIRECTION + counter.to_bytes(8, "big")
        start = time.perf_counter_ns()
        sealed = self.cipher.encrypt(nonce, PLAINTEXT, HEADER)
        self.seals.append(time.perf_counter_ns() - start)
        self.sock.sendall(HEADER + sealed)

    def run(self, first: bool, trips: int) -> None:
        for counter in range(trips):
            start = time.perf_counter_ns()
            if not first:
                self.receive(counter)
            self.send(counter)
            if first:
                self.receive(counter)
                self.trips.append(time.perf_counter_ns() - start)


def ping_pong(kind: str, trips: int, evict: int, work: int) -> list[float]:
    """Medians, in us, of the first end's round trip, open, seal and work after an open."""
    near, far = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the echoing end
        near.close()
        code = 1
        try:
            Side(far, kind, evict, work).run(False, trips)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    far.close()
    side = Side(near, kind, evict, work)
    try:
        side.run(True, trips)
    finally:
        near.close()
        os.waitpid(pid, 0)
    return [
        statistics.median(samples) / 1000
        for samples in (side.trips, side.opens, side.seals, side.works)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000, help="hot loop length")
    parser.add_argument("--trips", type=int, default=5_000, help="round trips per round")
    parser.add_argument("--rounds", type=int, default=9, help="paired ping-pong rounds")
    parser.add_argument("--evict", type=int, default=0, help="bytes written after each record")
    parser.add_argument("--work", type=int, default=0, help="python_work units after each")
    args = parser.parse_args()
    print(f"cipher cost: python {sys.version.split()[0]}, load {os.getloadavg()[0]:.1f}")
    for kind in ("aes", "noop"):
        encrypt, decrypt = hot(kind, args.calls)
        print(f"hot, {kind:4}: encrypt {encrypt:6.0f} ns, decrypt_into {decrypt:6.0f} ns")
    rounds: dict[str, list[list[float]]] = {"aes": [], "noop": []}
    for _ in range(args.rounds):
        for kind, runs in rounds.items():
            runs.append(ping_pong(kind, args.trips, args.evict, args.work))
    print(f"ping-pong, evict {args.evict} B, work {args.work} units, medians of rounds (us):")
    for kind, runs in rounds.items():
        trip, opened, sealed, work = (statistics.median(r[i] for r in runs) for i in range(4))
        print(
            f"  {kind:4}: round trip {trip:7.1f}, decrypt_into {opened:5.2f}, "
            f"encrypt {sealed:5.2f}, the work after an open {work:7.1f}"
        )
    extra = sorted(a[0] - b[0] for a, b in zip(rounds["aes"], rounds["noop"], strict=True))
    print(
        f"  AES extra per round trip {statistics.median(extra):.2f} us "
        f"(paired rounds {extra[0]:.2f} to {extra[-1]:.2f})"
    )


if __name__ == "__main__":
    main()
