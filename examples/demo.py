"""discoro demo: a real computation on a local cluster that this program starts itself.

A node with two server processes runs on loopback; a private scheduler in this program finds
them; a generator-style client ships `sum_of_squares` to them, sends each remote coroutine a
series of numbers by message, and gathers the answers; an async status coroutine shows what
the scheduler reports, with a progress bar (tqdm, on stderr) of the remote coroutines that
have finished. What the remote coroutines print shows here too, prefixed with the process it
came from. Everything stops at the end.
"""

import secrets
import socket

from tqdm import tqdm

import discoro


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


async def show_status(client, coro=None):
    # async style: the same Coro, awaited instead of yielded
    coro.set_daemon()  # it does not keep the program alive
    ready, created = discoro.Scheduler.ProcInitialized, discoro.Scheduler.CoroCreated
    # a progress bar on stderr while a person watches (off when stderr is not a terminal)
    progress = tqdm(total=0, desc="remote coroutines done", unit="coro", disable=None)
    started = finished = 0
    while True:
        message = await coro.receive()
        if isinstance(message, discoro.MonitorException):
            tqdm.write(f"  status: {message.args[0]} finished with {message.args[1][1]}")
            finished += 1
            progress.update(1)
            if finished == started:  # their output came before this (same path, in order)
                progress.close()
                client.send("all finished")
        elif message.status == ready:
            tqdm.write(f"  status: process ready: {message.info}")
        elif message.status == created:
            tqdm.write(f"  status: created {message.info.coro}")
            started += 1
            progress.total = started
            progress.refresh()


def client(coro=None):
    status = discoro.Coro(show_status, coro)
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
        total = discoro.Coro(client).value(60)
        print(f"sum of the squares of 1..100 computed remotely: {total} (expected 338350)")
        discoro.AsynCoro.instance().finish()
