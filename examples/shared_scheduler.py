"""A shared scheduler: the ``discoro`` program, a ``discoronode`` and two client programs.

When several clients use the same nodes, run the scheduler as its own program; clients then
do not create a `Scheduler`, they just ``schedule()`` their computation, which finds the
scheduler by its name (``discoro_scheduler``) on the network. The scheduler runs one
computation at a time, in the order they were submitted: the second client's ``schedule()``
returns when the first client's computation has closed. By hand that is:

    discoro -i 127.0.0.1 -u PORT                      # the shared scheduler
    discoronode -i 127.0.0.1 -u PORT -c 2             # on every node
    python shared_scheduler.py --client one PORT      # any number of clients

(all with the same secret: ``-s SECRET`` or ``$DISCORO_SECRET``). This program does exactly
that with subprocesses on loopback, with a random secret and a free discovery port, and
stops the scheduler and the node at the end.
"""

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time

import discoro


def job(client_name, n, coro=None):
    # runs on a server process
    yield coro.sleep(0.1)
    return f"{client_name}:{n * n}"


def client(name, coro=None):
    computation = discoro.Computation([job])
    waited = time.monotonic()
    if (yield computation.schedule()) != 0:
        raise RuntimeError("could not schedule the computation (is the scheduler running?)")
    print(f"client {name}: scheduled after {time.monotonic() - waited:.2f} s", flush=True)
    # the value of each remote coroutine comes back with its MonitorException; a run right
    # after schedule() waits (up to the computation's timeout) for a process to be ready,
    # and monitor() works even if the coroutine has already ended
    rcoros = []
    for n in range(4):
        rcoro = yield computation.run(job, name, n)
        if isinstance(rcoro, discoro.Coro):
            yield coro.monitor(rcoro)
            rcoros.append(rcoro)
        else:
            print(f"client {name}: run failed: {computation.last_error}", flush=True)
    values = []
    for _ in rcoros:
        message = yield coro.receive(timeout=10)
        values.append(message.args[1][1])
    yield computation.close()
    print(f"client {name}: results {sorted(values)}", flush=True)
    return len(values)


def client_main(name, port):
    discoro.AsynCoro(node="127.0.0.1", udp_port=port)  # the secret comes from $DISCORO_SECRET
    count = discoro.Coro(client, name).value(60)
    discoro.AsynCoro.instance().finish()
    sys.exit(0 if count == 4 else 1)


def start(command, env, ready):
    """Start ``command``; wait (at most 30 s) for a line containing ``ready``."""
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 30
    for line in process.stdout:
        print(f"  | {line.rstrip()}")
        if ready in line:
            return process
        if time.monotonic() > deadline:
            break
    process.kill()
    raise SystemExit(f"{command[2]} did not start")


def stop(process):
    process.stdin.write("quit\n")  # both programs also stop on SIGTERM or Ctrl-C
    process.stdin.close()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stdout.close()


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main():
    port = str(free_udp_port())
    env = dict(os.environ, DISCORO_SECRET=secrets.token_hex(16), PYTHONUNBUFFERED="1")
    common = ["-i", "127.0.0.1", "-u", port]
    with tempfile.TemporaryDirectory() as folder:
        scheduler = start(
            [
                sys.executable,
                "-m",
                "discoro.cli.scheduler",
                *common,
                "--dest_path",
                os.path.join(folder, "scheduler"),
            ],
            env,
            "scheduler ready",
        )
        node = start(
            [
                sys.executable,
                "-m",
                "discoro.cli.node",
                *common,
                "-c",
                "2",
                "--force",
                "--dest_path",
                os.path.join(folder, "node"),
            ],
            env,
            "processes ready",
        )
        try:
            clients = [
                subprocess.Popen([sys.executable, __file__, "--client", name, port], env=env)
                for name in ("one", "two")
            ]
            codes = [client.wait(60) for client in clients]
        finally:
            stop(node)
            stop(scheduler)
    if codes != [0, 0]:
        raise SystemExit(f"a client failed: exit codes {codes}")
    print("shared_scheduler: both clients done")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--client":
        client_main(sys.argv[2], int(sys.argv[3]))
    else:
        main()
