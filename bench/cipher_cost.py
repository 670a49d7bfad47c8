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
  that AES costs, median of the paired rounds. ``--evict BYTES`` makes each side write that
  much memory after each record (a stand-in for the rest of a real process's work, which
  evicts the cipher's code and data from the caches).

    python bench/cipher_cost.py
    python bench/cipher_cost.py --evict 4194304
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import time
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


def _side(sock: socket.socket, cipher: Any, first: bool, trips: int, evict: int) -> list[int]:
    """One end of the ping-pong; the first end returns each round trip's ns."""
    junk = bytearray(evict)
    zeros = bytes(len(range(0, evict, 64)))
    inbox = bytearray(4096)
    view = memoryview(inbox)
    room = memoryview(bytearray(len(PLAINTEXT)))
    times: list[int] = []

    def receive(counter: int) -> None:
        size = sock.recv_into(inbox)
        nonce = DIRECTION + counter.to_bytes(8, "big")
        cipher.decrypt_into(nonce, view[4:size], bytes(view[:4]), room)
        if evict:
            junk[::64] = zeros

    for counter in range(trips):
        start = time.perf_counter_ns()
        if not first:
            receive(counter)
        nonce = DIRECTION + counter.to_bytes(8, "big")
        sock.sendall(HEADER + cipher.encrypt(nonce, PLAINTEXT, HEADER))
        if first:
            receive(counter)
            times.append(time.perf_counter_ns() - start)
    return times


def ping_pong(kind: str, trips: int, evict: int) -> float:
    """Median us per round trip between two processes."""
    near, far = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the echoing end
        near.close()
        try:
            _side(far, make(kind), False, trips, evict)
        finally:
            os._exit(0)
    far.close()
    try:
        times = _side(near, make(kind), True, trips, evict)
    finally:
        near.close()
        os.waitpid(pid, 0)
    return statistics.median(times) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000, help="hot loop length")
    parser.add_argument("--trips", type=int, default=5_000, help="round trips per round")
    parser.add_argument("--rounds", type=int, default=9, help="paired ping-pong rounds")
    parser.add_argument("--evict", type=int, default=0, help="bytes written after each record")
    args = parser.parse_args()
    print(f"cipher cost: python {sys.version.split()[0]}, load {os.getloadavg()[0]:.1f}")
    for kind in ("aes", "noop"):
        encrypt, decrypt = hot(kind, args.calls)
        print(f"hot, {kind:4}: encrypt {encrypt:6.0f} ns, decrypt_into {decrypt:6.0f} ns")
    pairs = []
    for _ in range(args.rounds):
        pairs.append(
            (ping_pong("aes", args.trips, args.evict), ping_pong("noop", args.trips, args.evict))
        )
    extra = sorted(aes - noop for aes, noop in pairs)
    print(
        f"ping-pong (evict {args.evict} B): aes {statistics.median(p[0] for p in pairs):.1f} us, "
        f"no-op {statistics.median(p[1] for p in pairs):.1f} us per round trip; AES extra "
        f"{statistics.median(extra):.2f} us (paired rounds {extra[0]:.2f} to {extra[-1]:.2f})"
    )


if __name__ == "__main__":
    main()
