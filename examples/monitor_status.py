"""MonitorStatus: the status-coroutine template from the seed, to copy and extend.

The scheduler tells a computation's ``status_coro`` what happens: processes being discovered
and initialized, nodes going away, and - for every remote coroutine created with a ``run*``
method - a `MonitorException` when it ends. `MonitorStatus` turns those messages into method
calls. This one hands out a list of jobs: as soon as a process is ready (`ProcInitialized`)
it submits a job there with ``run_at``; whenever a job finishes it submits the next one to
the same process; failed jobs are reported (one job below fails on purpose). Override
`proc_ready`, `job_done`, `job_failed` or `proc_lost` to change the policy.

Runs standalone: it starts its own node with two server processes on loopback.
"""

import secrets
import socket

import discoro


def square(n, coro=None):
    # a job: runs on a server process
    yield coro.sleep(0.05)
    if n == 7:
        raise ValueError("7 is unlucky")  # to show how failures are reported
    return n * n


class MonitorStatus:
    """A status coroutine that submits ``jobs`` (argument tuples for ``func``) as processes
    become ready and collects results; ``Coro(monitor.run)`` starts it."""

    def __init__(self, func, jobs, client):
        self.func = func
        self.jobs = list(jobs)
        self.client = client  # told ("done", results, failures) when every job ended
        self.computation = None  # set before computation.schedule()
        self.running = {}  # remote coroutine -> its arguments
        self.results = {}
        self.failures = {}

    # -- override these ---------------------------------------------------------------------

    def proc_ready(self, location, coro):
        """A process is initialized: start a job there."""
        yield self.submit(location)

    def job_done(self, rcoro, args, value, coro):
        self.results[args] = value
        yield self.submit(rcoro.location)  # keep that process busy

    def job_failed(self, rcoro, args, exc_type, exc, coro):
        self.failures[args] = f"{exc_type.__name__}: {exc}"
        yield self.submit(rcoro.location)

    def proc_lost(self, location, coro):
        """A process went away; its running jobs are reported as failed (ProcessLost)."""
        return
        yield

    # -- the machinery ----------------------------------------------------------------------

    def submit(self, location):
        """Run the next job at ``location`` (a generator: ``yield self.submit(...)``)."""
        if not self.jobs:
            return
        args = self.jobs.pop(0)
        rcoro = yield self.computation.run_at(location, self.func, *args)
        if isinstance(rcoro, discoro.Coro):
            self.running[rcoro] = args
        else:  # (exception class, function name, reason): the job could not start
            self.failures[args] = f"not started: {rcoro}"

    def run(self, coro=None):
        coro.set_daemon()
        Scheduler = discoro.Scheduler
        while True:
            message = yield coro.receive()
            if isinstance(message, discoro.MonitorException):
                rcoro, (exc_type, value) = message.args[0], message.args[1]
                args = self.running.pop(rcoro, None)
                if exc_type is StopIteration:
                    yield self.job_done(rcoro, args, value, coro)
                else:
                    yield self.job_failed(rcoro, args, exc_type, value, coro)
                if not self.running and not self.jobs:
                    self.client.send(("done", self.results, self.failures))
            elif message.status == Scheduler.ProcInitialized:
                print(f"  process ready: {message.info}")
                yield self.proc_ready(message.info, coro)
            elif message.status in (Scheduler.ProcDisconnected, Scheduler.ProcClosed):
                yield self.proc_lost(message.info, coro)
            elif message.status == Scheduler.NodeInitialized:
                print(f"  node ready: {message.info}")


def client(coro=None):
    monitor = MonitorStatus(square, [(n,) for n in range(1, 11)], coro)
    computation = discoro.Computation([square], status_coro=discoro.Coro(monitor.run))
    monitor.computation = computation
    if (yield computation.schedule()) != 0:
        raise RuntimeError("could not schedule the computation")
    message = yield coro.receive(timeout=30)
    yield computation.close()
    if message is None:
        raise RuntimeError("the jobs did not finish in time")
    _, results, failures = message
    for args, error in sorted(failures.items()):
        print(f"  square{args} failed: {error}")
    print(f"  results: {dict(sorted((a[0], v) for a, v in results.items()))}")
    return len(results), len(failures)


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    secret, port = secrets.token_hex(16), free_udp_port()
    with discoro.local_cluster(procs=2, udp_port=port, secret=secret):
        discoro.Scheduler(node="127.0.0.1", udp_port=port, secret=secret)
        done, failed = discoro.Coro(client).value(60)
        print(f"monitor_status: {done} jobs done, {failed} failed as expected")
        discoro.AsynCoro.instance().finish()
