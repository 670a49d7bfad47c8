"""discoro demo: a real computation on a local cluster that this program starts itself.

A node with two server processes runs on loopback; a private scheduler in this program finds
them; a generator-style client ships `sum_of_squares` to them, sends each remote coroutine a
series of numbers by message, and gathers the answers; an async status coroutine shows what
the scheduler reports. Everything stops at the end.
"""

import secrets
import socket

import discoro


def sum_of_squares(client, coro=None):
    # runs on a server process: receive numbers until None, then answer
    total = 0
    while True:
        number = yield coro.receive()
        if number is None:
            break
        total += number * number
    client.send((coro.location, total))


async def show_status(coro=None):
    # async style: the same Coro, awaited instead of yielded
    coro.set_daemon()  # it does not keep the program alive
    ready, created = discoro.Scheduler.ProcInitialized, discoro.Scheduler.CoroCreated
    while True:
        message = await coro.receive()
        if isinstance(message, discoro.MonitorException):
            print(f"  status: {message.args[0]} finished with {message.args[1][1]}")
        elif message.status == ready:
            print(f"  status: process ready: {message.info}")
        elif message.status == created:
            print(f"  status: created {message.info.coro}")


def client(coro=None):
    status = discoro.Coro(show_status)
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
    grand_total = 0
    for _ in workers:
        where, total = yield coro.receive(timeout=10)
        print(f"  {where} summed its share of squares: {total}")
        grand_total += total
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
