"""How a process with coroutines ends (reference 1.1, 1.14), with real subprocesses: a
program that falls off its end waits for its non-daemon coroutines; daemons do not keep it
alive and are closed; ``AsynCoro().finish()``, ``terminate()``, ``join()`` and
``atexit(func)``; and a purely local program opens no network socket."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PROCESS_TIMEOUT = 30


def run(program: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(program)],
        capture_output=True,
        text=True,
        timeout=PROCESS_TIMEOUT,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


def lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return proc.stdout.splitlines()


def test_falling_off_the_end_waits_for_non_daemon_coroutines():
    proc = run(
        """
        from discoro import Coro

        def late(coro=None):
            yield coro.sleep(0.05)
            print("late coroutine done", flush=True)

        def worker(coro=None):
            message = yield coro.receive()
            yield coro.sleep(0.1)
            print("worker got", message, flush=True)
            Coro(late)  # created while the program is already ending: waited for too

        async def async_worker(coro=None):
            message = await coro.receive()
            await coro.sleep(0.15)
            print("async worker got", message, flush=True)

        w, a = Coro(worker), Coro(async_worker)
        print("main end", flush=True)
        w.send("hello")
        a.send("hi")
        """
    )
    out = lines(proc)
    # each coroutine is still busy when the main thread ends; how their sleeps interleave is
    # not the point, only what causality fixes: main ends first, late is made by worker
    assert out[0] == "main end"
    assert sorted(out[1:]) == ["async worker got hi", "late coroutine done", "worker got hello"]
    assert out.index("worker got hello") < out.index("late coroutine done")


def test_daemon_coroutines_do_not_keep_the_process_alive_and_are_closed():
    proc = run(
        """
        from discoro import Coro

        def daemon(coro=None):
            assert coro.set_daemon() == 0
            try:
                yield coro.receive()
            finally:
                print("daemon closed", flush=True)

        async def async_daemon(coro=None):
            assert coro.set_daemon(True) == 0
            try:
                await coro.sleep()
            finally:
                print("async daemon closed", flush=True)

        def normal(coro=None):
            yield coro.sleep(0.05)
            print("normal done", flush=True)

        Coro(daemon)
        Coro(async_daemon)
        Coro(normal)
        print("main end", flush=True)
        """
    )
    out = lines(proc)
    assert out[:2] == ["main end", "normal done"]
    assert sorted(out[2:]) == ["async daemon closed", "daemon closed"]


def test_a_coroutine_that_stops_being_a_daemon_keeps_the_process_alive():
    proc = run(
        """
        import queue
        from discoro import Coro

        signals = queue.Queue()

        def changes_its_mind(coro=None):
            coro.set_daemon()
            yield coro.sleep(0.01)
            coro.set_daemon(False)
            signals.put("not a daemon any more")
            yield coro.sleep(0.1)
            print("finished anyway", flush=True)

        Coro(changes_its_mind)
        signals.get(timeout=10)
        """
    )
    assert lines(proc) == ["finished anyway"]


def test_explicit_finish_waits_then_stops_the_kernel():
    proc = run(
        """
        from discoro import AsynCoro, Coro

        def worker(n, coro=None):
            yield coro.sleep(0.03 * n)
            print("worker", n, flush=True)

        def daemon(coro=None):
            coro.set_daemon()
            try:
                yield coro.receive()
            finally:
                print("daemon closed", flush=True)

        for n in (3, 1, 2):
            Coro(worker, n)
        Coro(daemon)
        kernel = AsynCoro()
        kernel.finish()
        print("after finish", flush=True)
        kernel.finish()  # a second finish is harmless
        new = AsynCoro()
        print("new kernel:", new is not kernel, flush=True)

        def again(coro=None):
            yield
            return "runs on the new kernel"

        print(Coro(again).value(5), flush=True)
        """
    )
    out = lines(proc)
    assert sorted(out[:3]) == ["worker 1", "worker 2", "worker 3"]  # any order: all waited for
    assert out[3:] == [
        "daemon closed",
        "after finish",
        "new kernel: True",
        "runs on the new kernel",
    ]


def test_terminate_closes_every_coroutine_now_and_runs_atexit_functions():
    proc = run(
        """
        import queue
        from discoro import AsynCoro, Coro

        signals = queue.Queue()

        def receiver(coro=None):
            try:
                signals.put(1)
                yield coro.receive()
            finally:
                print("receiver closed", flush=True)

        def sleeper(coro=None):
            try:
                signals.put(1)
                yield coro.sleep()
            finally:
                print("sleeper closed", flush=True)

        async def async_receiver(coro=None):
            try:
                signals.put(1)
                await coro.receive()
            finally:
                print("async receiver closed", flush=True)

        for target in (receiver, sleeper, async_receiver):
            Coro(target)
        for _ in range(3):
            signals.get(timeout=10)
        kernel = AsynCoro()
        kernel.atexit(print, "atexit function", "ran", flush=True)
        kernel.terminate()
        print("after terminate", flush=True)
        kernel.terminate()  # harmless
        """
    )
    out = lines(proc)
    assert sorted(out[:3]) == ["async receiver closed", "receiver closed", "sleeper closed"]
    assert out[3:] == ["atexit function ran", "after terminate"]


def test_join_waits_without_stopping():
    proc = run(
        """
        import queue
        from discoro import AsynCoro, Coro

        def worker(coro=None):
            yield coro.sleep(0.05)
            print("worker done", flush=True)

        signals = queue.Queue()

        def daemon_forever(coro=None):
            coro.set_daemon()
            signals.put("running")
            yield coro.receive()

        Coro(daemon_forever)
        Coro(worker)
        signals.get(timeout=10)
        kernel = AsynCoro()
        kernel.join(show_running=True)
        print("joined", flush=True)

        def after(coro=None):
            yield
            return "the kernel still runs"

        print(Coro(after).value(5), flush=True)
        print("same kernel:", AsynCoro() is kernel, flush=True)
        """
    )
    assert lines(proc) == [
        "worker done",
        "joined",
        "the kernel still runs",
        "same kernel: True",
    ]
    assert "daemon_forever/" in proc.stderr  # show_running lists what is running


def test_atexit_functions_run_after_the_kernel_stopped_at_interpreter_exit():
    proc = run(
        """
        import threading
        from discoro import AsynCoro, Coro

        def worker(coro=None):
            yield coro.sleep(0.05)
            print("worker done", flush=True)

        def at_exit(a, b=None):
            # the kernel's thread has ended: only the main thread is left
            print("atexit", a, b, threading.active_count(), flush=True)

        Coro(worker)
        AsynCoro().atexit(at_exit, 1, b=2)
        print("main end", flush=True)
        """
    )
    assert lines(proc) == ["main end", "worker done", "atexit 1 2 1"]


def test_a_monitored_coroutine_that_died_does_not_keep_the_process_alive():
    proc = run(
        """
        from discoro import Coro

        def worker(coro=None):
            yield
            raise ValueError("dies")

        def supervisor(coro=None):
            w = Coro(worker)
            yield coro.monitor(w)
            exc = yield coro.receive()
            print("supervisor saw", exc.args[1][0].__name__, flush=True)

        Coro(supervisor)
        """
    )
    assert lines(proc) == ["supervisor saw ValueError"]


def test_an_uncaught_exception_is_printed_with_its_traceback_and_the_program_ends():
    proc = run(
        """
        from discoro import Coro

        def failing(coro=None):
            yield
            1 / 0

        Coro(failing)
        print("main end", flush=True)
        """
    )
    assert lines(proc) == ["main end"]
    assert "failing/" in proc.stderr
    assert "Traceback (most recent call last)" in proc.stderr
    assert "ZeroDivisionError: division by zero" in proc.stderr
    assert " - discoro - " in proc.stderr  # the logger's format


def test_blocking_kernel_calls_inside_a_coroutine_are_refused():
    proc = run(
        """
        from discoro import AsynCoro, Coro
        from discoro.errors import WrongThreadError

        def gen(coro=None):
            refused = []
            for name in ("finish", "terminate", "join"):
                try:
                    getattr(AsynCoro(), name)()
                except WrongThreadError:
                    refused.append(name)
            yield
            return refused

        print(" ".join(Coro(gen).value(5)), flush=True)
        """
    )
    assert lines(proc) == ["finish terminate join"]


def test_asyncoro_options_and_the_singleton_in_a_fresh_process():
    proc = run(
        """
        import warnings
        from discoro import AsynCoro

        warnings.simplefilter("ignore")
        try:
            AsynCoro(no_such_option=1)
        except TypeError as exc:
            print("refused:", "no_such_option" in str(exc), flush=True)
        kernel = AsynCoro()
        print("same:", AsynCoro() is kernel, AsynCoro.instance() is kernel, flush=True)
        print("later arguments ignored:", AsynCoro(no_such_option=2) is kernel, flush=True)
        print("not distributed:", kernel.location is None, flush=True)
        """
    )
    assert lines(proc) == [
        "refused: True",
        "same: True True",
        "later arguments ignored: True",
        "not distributed: True",
    ]


def test_a_purely_local_program_opens_no_network_socket():
    proc = run(
        """
        import json
        import pickle
        import psutil
        from discoro import AsynCoro, Coro, serialize, unserialize

        def echo(coro=None):
            while (message := (yield coro.receive())) is not None:
                sender, payload = message
                sender.send(payload)

        async def client(server, coro=None):
            assert unserialize(serialize(server)) is server
            got = []
            for i in range(20):
                server.send((coro, i))
                got.append(await coro.receive(timeout=5))
            server.send(None)
            return got

        def watcher(target, coro=None):
            yield coro.monitor(target)
            return (yield coro.receive(timeout=5)).args[1][0].__name__

        server = Coro(echo)
        w = Coro(watcher, server)
        assert Coro(client, server).value(5) == list(range(20))
        assert w.value(5) == "StopIteration"
        assert pickle.loads(pickle.dumps(w)) == w

        process = psutil.Process()
        families = sorted({c.family.name for c in process.net_connections(kind="all")})
        print(json.dumps({
            "inet": len(process.net_connections(kind="inet")),
            "families": families,
            "location": AsynCoro().location,
        }))
        """
    )
    report = json.loads(lines(proc)[-1])
    assert report["inet"] == 0
    assert set(report["families"]) <= {"AF_UNIX"}  # asyncio's self-pipe is a socketpair
    assert report["location"] is None


def test_coroutines_that_outlive_the_main_script_can_still_use_threads():
    # The wait for non-daemon coroutines runs before threading shuts its pools down, so a
    # coroutine still running after the script's end can resolve a name or run to_thread
    # (after atexit time a new executor job is refused: "can't register atexit after shutdown").
    proc = run(
        """
        import asyncio, socket
        from discoro import Coro

        async def late(coro=None):
            await coro.sleep(0.05)  # the main script has ended by now
            infos = await asyncio.get_running_loop().getaddrinfo("localhost", 80)
            print("resolved", infos[0][0] in (socket.AF_INET, socket.AF_INET6), flush=True)
            print("thread says", await asyncio.to_thread(lambda: 6 * 7), flush=True)

        Coro(late)
        """
    )
    assert lines(proc) == ["resolved True", "thread says 42"], proc.stderr
