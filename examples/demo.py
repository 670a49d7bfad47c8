"""discoro demo: a real computation on a local cluster that this program starts itself.

A node with two server processes runs on loopback; a private scheduler in this program finds
them; a generator-style client ships `sum_of_squares` to them, sends each remote coroutine a
series of numbers by message, and gathers the answers; an async status coroutine shows what
the scheduler reports, with a progress bar (on stderr, in a terminal) of the remote
coroutines that have finished. What the remote coroutines print shows here too, prefixed
with the process it came from.

The bar is tqdm's if it is installed (``pip install -e '.[demo]'``), else a plain line.
While it shows, every line printed or logged (discoro's log lines and remote output, which
are written to the current ``sys.stdout``/``sys.stderr``) goes above the bar, not through it.
"""

import contextlib
import io
import secrets
import socket
import sys
import threading

import discoro


class PlainBar:
    """A one-line progress bar on a terminal's stderr (tqdm's interface, what we use of it)."""

    def __init__(self, desc, stream):
        self.desc, self.stream, self.n, self.total = desc, stream, 0, 0
        self.disable = not stream.isatty()
        self.refresh()

    def clear(self):
        if not self.disable:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def refresh(self):
        if not self.disable:
            self.stream.write(f"\r{self.desc}: {self.n}/{self.total}")
            self.stream.flush()

    def update(self, n=1):
        self.n += n
        self.refresh()

    def close(self):
        if not self.disable:
            self.refresh()
            self.stream.write("\n")
            self.stream.flush()
            self.disable = True


def progress_bar(desc, stream):
    try:
        from tqdm import tqdm
    except ImportError:
        return PlainBar(desc, stream)
    return tqdm(total=0, desc=desc, unit="coro", file=stream, disable=None)


class AboveTheBar(io.TextIOBase):
    """Stands in for sys.stdout or sys.stderr while the bar shows: each complete line clears
    the bar, is written to the real stream, and the bar is drawn again below it."""

    lock = threading.Lock()  # stdout and stderr share the terminal

    def __init__(self, bar, stream):
        super().__init__()
        self.bar, self.stream, self.partial = bar, stream, ""

    def writable(self):
        return True

    def write(self, text):
        with self.lock:
            head, newline, self.partial = (self.partial + text).rpartition("\n")
            if newline:
                self.bar.clear()
                self.stream.write(head + newline)
                self.stream.flush()
                self.bar.refresh()
        return len(text)

    def flush(self):
        self.stream.flush()


@contextlib.contextmanager
def lines_above(bar):
    """Send what is printed or logged meanwhile above ``bar``."""
    streams = sys.stdout, sys.stderr
    above = AboveTheBar(bar, streams[0]), AboveTheBar(bar, streams[1])
    sys.stdout, sys.stderr = above
    try:
        yield bar
    finally:
        sys.stdout, sys.stderr = streams
        bar.close()
        for wrapper in above:  # text of an unfinished line goes out now, below the bar
            wrapper.stream.write(wrapper.partial)


def sum_of_squares(client, coro=None):
    # runs on a server process: receive numbers until None, then answer
    total = count = 0
    while True:
        number = yield coro.receive()
        if number is None:
            break
        total += number * number
        count += 1
    print(f"summed {count} squares")  # remote output: shown at the client, with a prefix
    client.send((coro.location, total))


async def show_status(client, bar, coro=None):
    # async style: the same Coro, awaited instead of yielded
    coro.set_daemon()  # it does not keep the program alive
    ready, created = discoro.Scheduler.ProcInitialized, discoro.Scheduler.CoroCreated
    started = finished = 0
    while True:
        message = await coro.receive()
        if isinstance(message, discoro.MonitorException):
            print(f"  status: {message.args[0]} finished with {message.args[1][1]}")
            finished += 1
            bar.update(1)
            if finished == started:  # their output came before this (same path, in order)
                client.send("all finished")
        elif message.status == ready:
            print(f"  status: process ready: {message.info}")
        elif message.status == created:
            print(f"  status: created {message.info.coro}")
            started += 1
            bar.total = started
            bar.refresh()


def client(bar, coro=None):
    status = discoro.Coro(show_status, coro, bar)
    computation = discoro.Computation([sum_of_squares], status_coro=status)
    if (yield computation.schedule()) != 0:
        raise RuntimeError("could not schedule the computation")
    while len((yield computation.procs())) < 2:  # wait until both processes are ready
        yield coro.sleep(0.05)
    workers = yield computation.run_procs(sum_of_squares, coro)
    for number in range(1, 101):
        workers[number % len(workers)].send(number)
    for worker in workers:
        worker.send(None)
    grand_total, answers, all_finished = 0, 0, False
    while answers < len(workers) or not all_finished:
        message = yield coro.receive(timeout=10)
        if message == "all finished":
            all_finished = True
        elif isinstance(message, tuple):
            where, total = message
            print(f"  {where} summed its share of squares: {total}")
            grand_total += total
            answers += 1
        else:
            raise RuntimeError(f"no answer in time: {message!r}")
    yield computation.close()
    return grand_total


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    secret = secrets.token_hex(16)  # this demo's own cluster, on loopback only
    port = free_udp_port()
    print("starting a local node with 2 server processes ...")
    with discoro.local_cluster(procs=2, udp_port=port, secret=secret):
        discoro.Scheduler(node="127.0.0.1", udp_port=port, secret=secret)
        with lines_above(progress_bar("remote coroutines done", sys.stderr)) as bar:
            total = discoro.Coro(client, bar).value(60)
        print(f"sum of the squares of 1..100 computed remotely: {total} (expected 338350)")
        discoro.AsynCoro.instance().finish()
