"""The wire codec alone: what a message costs the sender's and the receiver's Python between
``send`` and the socket, without sockets, event loops or other processes (issue 9).

Two authenticated `Connection` objects in one process. The sender queues messages as the
network's send path does (`Connection.queue_packed`, the back-pressure check after each) and
seals what is queued after every `BATCH` of them (the link seals once per loop turn; a
sender that yields every 1,000 sends queues that many; `BULK_BATCH` of 1 MiB). The receiver
takes each batch's records before the next batch is made (so memory is reused, as in a
process that writes what it seals) the way the link does, `CHUNK` bytes per read written into the
connection's own buffer (``get_buffer`` / ``buffer_updated``, the copy a ``recv_into`` makes)
and decodes every complete message (``process``) into a handler that only counts.

Reported: CPU microseconds per message on each side (best and median of the rounds; CPU
time, so a loaded machine inflates it less than wall time), for 100-byte messages and for
1 MiB messages (then also the side's MB/s of CPU).

    python bench/wire_bench.py                 # both workloads
    python bench/wire_bench.py --only small --rounds 9
    python bench/wire_bench.py --profile small --side receive   # cProfile one side
    python bench/wire_bench.py --vs OTHER/src  # paired: rounds alternate with OTHER's code,
                                               # each in a fresh process; ratios per pair
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

_SRC = Path(os.environ.get("WIRE_BENCH_SRC") or Path(__file__).resolve().parents[1] / "src")
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))

MB = 1 << 20
BATCH = 1000  # sends between two seals, as a sender that yields every 1,000 sends
BULK_BATCH = 16  # 1 MiB sends between two seals (the link's high-water mark is 16 MiB)
BULK_MIN = 64 * 1024
CHUNK = 256 * 1024  # bytes per read on the receiving side
WORKLOADS = {"small": (100, 200_000), "bulk": (MB, 300)}  # name: (message size, count)


def connected() -> tuple[object, object]:
    from discoro.wire import Connection, Identity, Role
    from discoro.wire.events import NEED_DATA

    secret = b"w" * 32
    client = Connection(Role.CLIENT, secret, Identity("c", "127.0.0.1", 9001, "c1"))
    server = Connection(Role.SERVER, secret, Identity("s", "127.0.0.1", 9002, "s1"))
    client.start()
    for _ in range(8):  # the handshake: a few exchanges
        for sender, receiver in ((client, server), (server, client)):
            data = sender.data_to_send()
            if data:
                receiver.receive_data(data)
                while receiver.next_event() is not NEED_DATA:
                    pass
    return client, server


class Sender:
    """Queues raw messages of ``size`` bytes as the network's send path does."""

    def __init__(self, client: object, size: int) -> None:
        from discoro.wire.safepack import pack

        self.client = client
        self.body = pack({"op": "send", "f": {"c": 7, "b": 1}})
        self.payload = os.urandom(size)

    def batch(self, count: int) -> list[bytes | bytearray]:
        """Queue ``count`` messages, then seal them all; the records, in order."""
        client, body, payload = self.client, self.body, self.payload
        queue_packed = client.queue_packed  # type: ignore[attr-defined]
        seal = client.seal  # type: ignore[attr-defined]
        high = 16 * MB
        for _ in range(count):
            queue_packed(body, payload, 7)
            if client.queued > high:  # type: ignore[attr-defined]  # the link's check
                pass
        out: list[bytes | bytearray] = []
        while (records := seal()) is not None:
            out.append(records)
        return out


class Receiver:
    """Reads records in `CHUNK`-byte reads into the connection's buffer and decodes them."""

    def __init__(self, server: object) -> None:
        self.server = server
        self.got = 0

    def handle(self, message: object) -> None:
        self.got += 1

    def take(self, records: list[bytes | bytearray]) -> None:
        server = self.server
        get_buffer = server.get_buffer  # type: ignore[attr-defined]
        buffer_updated = server.buffer_updated  # type: ignore[attr-defined]
        process = server.process  # type: ignore[attr-defined]
        handle = self.handle
        for chunk in records:
            with memoryview(chunk) as view:
                pos, end = 0, len(chunk)
                while pos < end:
                    room = get_buffer(CHUNK)
                    n = min(len(room), end - pos, CHUNK)
                    room[:n] = view[pos : pos + n]
                    room.release()
                    pos += n
                    buffer_updated(n)
                    process(handle)


def one_round(size: int, count: int) -> tuple[float, float]:
    """CPU seconds of (send, receive) for ``count`` messages of ``size`` bytes, in batches
    (each batch's records are received before the next batch is queued)."""
    client, server = connected()
    sender, receiver = Sender(client, size), Receiver(server)
    batch = BATCH if size < BULK_MIN else BULK_BATCH
    send = receive = 0.0
    clock = time.process_time
    for start in range(0, count, batch):
        t0 = clock()
        records = sender.batch(min(batch, count - start))
        t1 = clock()
        receiver.take(records)
        receive += clock() - t1
        send += t1 - t0
        del records
    if receiver.got != count:
        raise RuntimeError(f"received {receiver.got} of {count} messages")
    return send, receive


def run(only: list[str], rounds: int, scale: float) -> dict[str, list[tuple[float, float]]]:
    results: dict[str, list[tuple[float, float]]] = {}
    for name in only:
        size, count = WORKLOADS[name]
        count = max(1, int(count * scale))
        one_round(size, max(1, count // 10))  # warm up
        per = []
        for _ in range(rounds):
            send, receive = one_round(size, count)
            per.append((send / count * 1e6, receive / count * 1e6))
        results[name] = per
    return results


def table(results: dict[str, list[tuple[float, float]]], label: str) -> str:
    lines = [f"wire bench ({label}), load {os.getloadavg()[0]:.1f}: CPU us per message"]
    lines.append(f"{'workload':10} {'side':8} {'best':>9} {'median':>9} {'MB/s (best)':>12}")
    for name, per in results.items():
        size = WORKLOADS[name][0]
        for index, side in enumerate(("send", "receive")):
            values = [p[index] for p in per]
            best = min(values)
            rate = f"{size / MB / best * 1e6:,.0f}" if size >= MB else ""
            lines.append(
                f"{name:10} {side:8} {best:9.3f} {statistics.median(values):9.3f} {rate:>12}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(WORKLOADS))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--scale", type=float, default=1.0, help="times the message counts")
    parser.add_argument("--vs", type=Path, action="append", help="another source tree")
    parser.add_argument("--profile", choices=sorted(WORKLOADS), help="cProfile one workload")
    parser.add_argument("--side", choices=("send", "receive"), default="receive")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    only = args.only or sorted(WORKLOADS, reverse=True)
    if args.profile:
        import cProfile
        import pstats

        size, count = WORKLOADS[args.profile]
        client, server = connected()
        profiler = cProfile.Profile()
        sender, receiver = Sender(client, size), Receiver(server)
        batch = BATCH if size < BULK_MIN else BULK_BATCH
        for _ in range(0, count, batch):
            if args.side == "send":
                records = profiler.runcall(sender.batch, batch)
                receiver.take(records)
            else:
                profiler.runcall(receiver.take, sender.batch(batch))
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
        return
    if args.json:
        import json

        print(json.dumps(run(only, args.rounds, args.scale)))
        return
    trees = [_SRC, *(tree.resolve() for tree in args.vs or ())]
    import json

    merged: list[dict[str, list[list[float]]]] = [{} for _ in trees]
    for _ in range(args.rounds):  # interleaved: each round runs every tree once, in a process
        for tree, into in zip(trees, merged, strict=True):  # of its own (its own imports)
            command = [sys.executable, os.path.abspath(__file__), "--json", "--rounds", "1"]
            command += ["--scale", str(args.scale)]
            for name in only:
                command += ["--only", name]
            env = dict(os.environ, WIRE_BENCH_SRC=str(tree))
            output = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
            for name, per in json.loads(output.stdout.splitlines()[-1]).items():
                into.setdefault(name, []).extend(per)
    for tree, results in zip(trees, merged, strict=True):
        print(table({k: [(a, b) for a, b in v] for k, v in results.items()}, str(tree)))
    for index in range(1, len(trees)):
        print(f"ratio first / {trees[index]}, median of paired rounds (spread)")
        for name in only:
            for side in (0, 1):
                pairs = sorted(
                    a[side] / b[side]
                    for a, b in zip(merged[0][name], merged[index][name], strict=True)
                )
                label = ("send", "receive")[side]
                print(
                    f"{name:10} {label:8} {statistics.median(pairs):9.3f} "
                    f"({pairs[0]:.3f}-{pairs[-1]:.3f})"
                )


if __name__ == "__main__":
    main()
