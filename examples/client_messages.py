"""Remote coroutines and their client talking by messages: send, deliver and a Channel.

- The client creates a `Channel` in its own process and passes it to the remote coroutines
  (it travels as a handle); each remote worker subscribes to it, so one ``deliver`` on the
  channel reaches every worker (``n=`` waits until that many subscribers have it).
- Each worker sends its answers straight to the client coroutine (``client.send``), and its
  final report with ``client.deliver(...)``, which waits until the message is in the
  client's mailbox (1) or the timeout passes (0).
- The client sends a worker private messages too (``rcoro.send``).

Runs standalone: it starts its own node with two server processes on loopback.
"""

import secrets
import socket

import discoro


def worker(name, channel, client, coro=None):
    # runs on a server process
    if (yield channel.subscribe(coro)) != 0:
        raise RuntimeError("could not subscribe")
    client.send(("subscribed", name))
    handled = 0
    while True:
        message = yield coro.receive(timeout=20)
        if message is None or message == "stop":
            break
        if isinstance(message, tuple) and message[0] == "square":  # from the channel
            client.send(("square", name, message[1] ** 2))
        else:  # a private message
            client.send(("echo", name, message))
        handled += 1
    yield channel.unsubscribe(coro)
    delivered = yield client.deliver(("report", name, handled), timeout=5)
    return delivered


def client(coro=None):
    computation = discoro.Computation([worker])
    if (yield computation.schedule()) != 0:
        raise RuntimeError("could not schedule the computation")
    for _ in range(100):  # wait (at most 5 s) until both processes are ready
        if len((yield computation.procs())) >= 2:
            break
        yield coro.sleep(0.05)
    channel = discoro.Channel("client-broadcasts")
    workers = []
    for name in ("alpha", "beta"):
        rcoro = yield computation.run(worker, name, channel, coro)
        if not isinstance(rcoro, discoro.Coro):
            raise RuntimeError(f"run failed: {rcoro}")
        workers.append(rcoro)
    for _ in workers:
        kind, name = yield coro.receive(timeout=10)
        print(f"  {name} subscribed to {channel.name}")
    # one deliver reaches both workers; it returns how many got it
    reached = yield channel.deliver(("square", 12), timeout=5, n=len(workers))
    print(f"  channel delivered to {reached} workers")
    squares = []
    for _ in workers:
        kind, name, value = yield coro.receive(timeout=10)
        squares.append(value)
        print(f"  {name} answered {value}")
    workers[0].send("hello alpha")
    print(f"  private message echoed: {(yield coro.receive(timeout=10))[1:]}")
    for rcoro in workers:
        rcoro.send("stop")
    reports = []
    for _ in workers:
        kind, name, handled = yield coro.receive(timeout=10)
        reports.append(handled)
        print(f"  {name} reports {handled} messages handled")
    yield computation.close()
    return sum(squares), sum(reports)


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    secret, port = secrets.token_hex(16), free_udp_port()
    with discoro.local_cluster(procs=2, udp_port=port, secret=secret):
        discoro.Scheduler(node="127.0.0.1", udp_port=port, secret=secret)
        total, handled = discoro.Coro(client).value(60)
        print(f"client_messages: squares sum to {total}, {handled} messages handled")
        discoro.AsynCoro.instance().finish()
