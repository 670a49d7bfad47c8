"""Run one server process: ``python -m discoro.cluster.server_main --index I --prefix P
--options JSON [--rules JSON] [--watch-stdin] [--no-net-thread] [--debug | --log-level LEVEL]``
(the node program starts these; ``--rules`` are the node's `NodeRules`).

`serve` claims the process's PID file (a live discoro server holding it stops us with a clear
notice; a stale one is replaced), empties its working directory ``<dest root>/discoro/
proc-<i>`` and changes into it, starts networking as ``<prefix>-<i>`` (on a transport thread
of its own: user code on the loop cannot block message intake and file transfer; with
``--no-net-thread`` on the loop, as in clients) and the
``discoro_proc`` coroutine, prints ``discoro_proc <i> ready at <location> pid <pid>`` and
runs until it quits.

A start that fails for a reason of the operator's (a port in use, an address or TLS file
that cannot be used: `OSError`, `ValueError`) prints one line ``discoro_proc <i>: cannot
start: ...`` and exits with `EXIT_CANNOT_START`, never a traceback.

Quitting: SIGTERM or SIGINT (and, with ``--watch-stdin``, a ``quit`` line or the end of
stdin: the node died) sends `Quit`; a second signal aborts running jobs; a third exits at once.
The node's other lines on stdin: ``terminate`` (abort jobs, then quit), ``close`` (`Server.drain`),
``retire REASON``, ``status``. What the node counts and shows goes to stdout as lines
``discoro_proc <i> installed|closed <uid>`` and ``discoro_proc <i> status: <text>``.
Never an orphan: after the end of stdin a watchdog thread, which user code cannot block, exits
the process if it has not quit within `ORPHAN_GRACE` seconds (a job that never yields).
The secret is never on the command line: children get it in ``DISCORO_SECRET``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import Any

from discoro.cluster import load, procdir

EXIT_BUSY = 3  # another live server holds this index
#: Seconds a server whose node program died has to quit before its watchdog ends it.
ORPHAN_GRACE = 5.0
EXIT_CANNOT_START = 4  # a port, address or file it was given cannot be used (one line said so)


def serve(
    index: int,
    prefix: str,
    options: dict[str, Any],
    watch_stdin: bool = False,
    rules: dict[str, float] | None = None,
    net_thread: bool = True,
) -> int:
    """Run server process ``index``; its exit status. ``net_thread``: the network on a
    transport thread (``DISCORO_NET_THREAD``, when set, decides instead)."""
    import discoro.net  # noqa: F401  (installs the network layer)
    from discoro.cluster.server import Server
    from discoro.cluster.server_state import NodeRules
    from discoro.core import idle_spin
    from discoro.core.kernel import AsynCoro
    from discoro.net.network import make_network, make_threaded_network
    from discoro.net.runtime import ask_network, network_of

    # the network runs on a transport thread: a job that blocks the loop (a long sleep, a
    # CPU loop) cannot keep this process from taking in messages and files (issue 10);
    # ``--no-net-thread`` keeps it on the loop (round trips cost less)
    AsynCoro.install_network(make_threaded_network if net_thread else make_network)
    idle_spin.serving()  # its loops wait for requests: they poll for a shorter moment

    pid_path = procdir.pidfile(options, index)
    holder = procdir.claim(pid_path)
    if holder is not None:
        print(
            f"discoro_proc {index}: another discoronode seems to be running "
            f"(PID {holder} holds {pid_path}); stop it first, or use --clean if it is not",
            flush=True,
        )
        return EXIT_BUSY
    try:
        workdir = procdir.workdir(options, index)
        try:
            _check_files(options)
            procdir.reset_dir(workdir)
            os.chdir(workdir)
            kernel = AsynCoro(**options, name=f"{prefix}-{index}")
        except (OSError, ValueError) as exc:
            print(f"discoro_proc {index}: cannot start: {exc}", flush=True)
            return EXIT_CANNOT_START
        kernel.dest_path = str(workdir)
        # files sent to the node's location go to the node directory (D8)
        network = network_of(kernel)
        ask_network(
            kernel, network.set_node_path, procdir.procs_dir(options), procdir.node_reserved
        )
        out = sys.stdout  # the node's pipe: never a computation's captured output

        def tell(kind: str, text: str) -> None:
            separator = ": " if kind == "status" else " "
            # one write per line: other threads print too, and print() writes the text and
            # its newline separately
            out.write(f"discoro_proc {index} {kind}{separator}{text}\n")
            out.flush()

        load.find_platform()  # for the pulses, while the server starts
        server = Server(kernel, workdir, rules=NodeRules.from_dict(rules or {}), events=tell)
        server.node_dir = procdir.procs_dir(options)  # computation files go there too (D8)
        coro = server.start()
        _install_interrupts(server, watch_stdin)
        print(f"discoro_proc {index} ready at {kernel.location} pid {os.getpid()}", flush=True)
        coro.value()
        kernel.finish()
    finally:
        procdir.remove(pid_path, os.getpid())
    return 0


def _check_files(options: dict[str, Any]) -> None:
    """OSError naming the TLS file that cannot be read (the ssl module's errors do not)."""
    for key in ("certfile", "keyfile", "cafile"):
        path = options.get(key)
        if path and not os.access(path, os.R_OK):
            raise OSError(f"{key} {path}: cannot read it")


def _install_interrupts(server: Any, watch_stdin: bool) -> None:
    count = 0

    def interrupted(*_: Any) -> None:
        nonlocal count
        count += 1
        if count == 1:
            server.quit()
        elif count == 2:
            server.abort()
        else:
            os._exit(1)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: interrupted())
    if watch_stdin:

        def watch() -> None:
            told = False  # to quit, by the node: the end of stdin then means no orphan
            try:
                for line in sys.stdin:
                    command, _, rest = line.strip().partition(" ")
                    if command in ("quit", "exit"):
                        told = True
                        server.quit()  # and go on reading: ``terminate`` may follow
                    elif command == "terminate":
                        told = True
                        server.abort()
                    elif command == "close":
                        server.drain()
                    elif command == "retire":
                        server.retire(rest)
                    elif command == "status":
                        server.report_status()
            except (OSError, ValueError):  # an unreadable stdin counts as the node gone
                pass
            if told:
                return  # the node, alive, waits for us (and signals us if we take too long)
            # End of stdin: the node program is gone. Quit as usual; but a job that never
            # yields keeps the loop (and so the quit) from running, so a watchdog thread, which
            # user code cannot block, ends the process after a grace period: never an orphan.
            # It starts first, so nothing the quit does can keep it from firing.
            threading.Thread(target=exit_when_orphaned, name="discoro-orphan", daemon=True).start()
            server.quit()

        def exit_when_orphaned() -> None:
            time.sleep(ORPHAN_GRACE)
            with contextlib.suppress(OSError, ValueError):  # our output went to the node
                print(
                    f"discoro_proc: the node program is gone and this server did not quit "
                    f"within {ORPHAN_GRACE:g} s (a job that never yields?); exiting",
                    file=sys.__stderr__,
                    flush=True,
                )
            # SIGKILL, not os._exit: tools may wrap _exit (coverage saves its data there) and
            # block behind the spinning job; nothing can delay a kill
            os.kill(os.getpid(), signal.SIGKILL)

        threading.Thread(target=watch, name="discoro-stdin", daemon=True).start()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="discoro_proc", description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--options", default="{}", help="AsynCoro options as JSON")
    parser.add_argument("--rules", default="{}", help="the node's rules (NodeRules) as JSON")
    parser.add_argument("--watch-stdin", action="store_true")
    parser.add_argument(
        "--net-thread", action=argparse.BooleanOptionalAction, default=True,
        help="the network on a thread of its own (default; DISCORO_NET_THREAD overrides)",
    )  # fmt: skip
    parser.add_argument("-d", "--debug", action="store_true")
    parser.add_argument("--log-level", help="discoro's log level, e.g. DEBUG")
    return parser.parse_args(argv)


def peers(items: Any) -> list[Any]:
    """Peers for AsynCoro: ``[host, port]`` becomes a `Location`, a host stays a string."""
    from discoro.net.location import Location

    return [
        Location(item[0], int(item[1])) if isinstance(item, list | tuple) else str(item)
        for item in items or ()
    ]


def options_from_json(text: str) -> dict[str, Any]:
    """AsynCoro options from JSON (see `peers`)."""
    options = json.loads(text)
    if not isinstance(options, dict):
        raise ValueError("--options must be a JSON object")
    options["peers"] = peers(options.get("peers"))
    return options


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    level = "DEBUG" if args.debug else args.log_level
    if level:
        from discoro.core.log import logger

        logger.setLevel(getattr(logging, level.upper()))
    rules = json.loads(args.rules)
    options = options_from_json(args.options)
    return serve(args.index, args.prefix, options, args.watch_stdin, rules, args.net_thread)


if __name__ == "__main__":
    sys.exit(main())
