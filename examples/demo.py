"""discoro demo: coroutines in both styles passing messages (run: python examples/demo.py)."""

import discoro


def squarer(coro=None):
    # seed style: a generator function; blocking calls are yielded
    while True:
        msg = yield coro.receive()
        if msg is None:
            break
        client, number = msg
        client.send((number, number * number))


async def summer(worker, count, coro=None):
    # async style: the same Coro, the same methods, awaited
    total = 0
    for number in range(count):
        worker.send((coro, number))
        number, square = await coro.receive()
        print(f"  {number:2d}^2 = {square}")
        total += square
    worker.send(None)
    return total


worker = discoro.Coro(squarer)
client = discoro.Coro(summer, worker, 10)
print("sum of squares:", client.value())
