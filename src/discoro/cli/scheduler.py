"""``discoro``: the shared scheduler program (reference 5), and the umbrella command.

    discoro [scheduler] [options]   run a shared scheduler until quit/exit, Ctrl-C or SIGTERM
    discoro node [options]          the same as ``discoronode``
    discoro status [options]        show a scheduler's nodes, processes and coroutines
    discoro ssh [options] HOST ...  start a cluster on other machines over SSH
    discoro slurm --print [options] the shell lines that start a cluster in a Slurm job

Scheduler options: the network options of ``discoronode`` (without ``-c``) plus ``--node
HOST`` (repeatable: nodes on other networks), ``--zombie_period SEC`` (>= 100, 0 = never;
default 1800) and ``--clean``; ``--http PORT`` serves the status page (on ``--http_addr``,
default 127.0.0.1; beyond loopback the printed URL carries the access token); the later
versions' ``-t`` (``--tcp_port``), ``--pulse_interval`` (how often idle server processes
report), ``--ping_interval``, ``--discoronode_port`` (the nodes' UDP port, default ``-u``'s)
and ``--daemon`` (no commands on stdin); ``--print-systemd-unit``. stdin commands: ``status``
(or an empty line) prints one line about the computation, its jobs, nodes and processes;
``quit``/``exit`` stop. Arguments are checked before anything starts (`common.preflight`):
a mistake is one line on stderr and exit status 2; a port taken while starting is one line
and exit status 1.
"""

from __future__ import annotations

import argparse
import queue
import signal
import sys
from typing import TYPE_CHECKING, Any

from discoro.cli.common import (
    ArgumentParser,
    add_network_options,
    configure_logging,
    fail,
    log_level,
    network_options,
    preflight,
)
from discoro.cli.node_options import add_announce_options, announce_options
from discoro.cli.session import add_session_option, enter_session
from discoro.cli.units import add_unit_option, print_unit
from discoro.cluster.constants import MaxPulseInterval, MinPulseInterval
from discoro.cluster.stdin_commands import read_commands

if TYPE_CHECKING:
    from discoro.cluster.scheduler import Scheduler

DEFAULT_ZOMBIE_PERIOD = 1800
COMMANDS = """\
commands:
  scheduler   run a shared scheduler until quit/exit, Ctrl-C or SIGTERM (the default;
              its options are below)
  node        start server processes on this node: the same as discoronode
              (discoro node --help)
  status      show a scheduler's nodes, processes and coroutines (discoro status --help)
  ssh         start a cluster on other machines over SSH: the scheduler and a node on the
              first host, a node on every other (discoro ssh --help)
  slurm       print the shell lines that start a cluster in a Slurm allocation
              (discoro slurm --help)
"""


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="discoro",
        usage="discoro [scheduler] [options]\n"
        "       discoro node [options]\n"
        "       discoro status [options]\n"
        "       discoro ssh [options] HOST [HOST ...]\n"
        "       discoro slurm --print [options]",
        description=COMMANDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_network_options(parser, "discoro")
    parser.add_argument("-t", dest="tcp_port", type=int, help="the same as --tcp_port")
    parser.add_argument(
        "--node", action="append", default=[], dest="nodes", metavar="HOST",
        help="a node on another network (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--zombie_period", type=int, default=DEFAULT_ZOMBIE_PERIOD,
        help="seconds a process may sit idle before it closes the computation "
        "(>= 100; 0: never)",
    )  # fmt: skip
    parser.add_argument("--http", type=int, metavar="PORT", help="serve the status page")
    parser.add_argument(
        "--http_addr", default="127.0.0.1", metavar="ADDR",
        help="status page address (default 127.0.0.1; others need the printed token)",
    )  # fmt: skip
    parser.add_argument(
        "--pulse_interval", type=float, metavar="SEC",
        help="how often idle server processes report (default 2)",
    )  # fmt: skip
    add_announce_options(parser, "--discoronode_port", "nodes")
    parser.add_argument("--daemon", action="store_true", help="read no commands on stdin")
    add_unit_option(parser)
    add_session_option(parser)
    return parser


QUIT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGABRT)


def quit_events(daemon: bool = False, quit_at_eof: bool = False) -> queue.SimpleQueue[str]:
    """Start listening for signals and (unless ``daemon``) commands on stdin (at the end of
    stdin only signals count, unless ``quit_at_eof``: no busy loop). Call it before
    announcing readiness, so a signal sent right after the announcement is never missed."""
    events: queue.SimpleQueue[str] = queue.SimpleQueue()

    def handler(signum: int, _frame: Any) -> None:
        events.put(signal.Signals(signum).name)

    for signum in QUIT_SIGNALS:
        signal.signal(signum, handler)
    if not daemon or quit_at_eof:
        commands = ("quit", "exit", "status")
        on_eof = events.put if quit_at_eof else None
        read_commands(
            "discoro", commands, lambda word, _: events.put(word), empty="status", on_eof=on_eof
        )
    return events


def wait_for_quit(events: queue.SimpleQueue[str], scheduler: Scheduler | None = None) -> str:
    """Block until a quit event arrives (answering ``status`` meanwhile); the reason."""
    while True:
        try:
            event = events.get(timeout=5.0)
        except queue.Empty:
            continue
        if event != "status":
            return event
        if scheduler is not None:
            scheduler.print_status()


def run_scheduler(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.print_systemd_unit:
        return print_unit("discoro")
    if args.zombie_period and args.zombie_period < 100:
        parser.error("--zombie_period must be at least 100 (or 0: never)")
    pulse = args.pulse_interval
    if pulse is not None and not MinPulseInterval <= pulse <= MaxPulseInterval:
        parser.error(
            f"--pulse_interval {pulse:g}: between {MinPulseInterval} and {MaxPulseInterval}"
        )
    try:
        announce = announce_options(args.ping_interval, args.discoronode_port, "--discoronode_port")
    except ValueError as exc:
        parser.error(str(exc))
    enter_session(args)
    configure_logging(log_level(args))
    options = network_options(args)
    options.update(announce)
    http = (args.http_addr, args.http) if args.http is not None else None
    options = preflight("discoro", options, [args.tcp_port] if args.tcp_port else [], http)
    # Importing these installs the network layer and the status page (for --http) into the
    # layers below; here, not at the top, so that ``discoro node`` loads neither.
    import discoro.net
    import discoro.web  # noqa: F401
    from discoro.cluster.scheduler import Scheduler
    from discoro.cluster.server_main import peers
    from discoro.core.kernel import AsynCoro

    events = quit_events(args.daemon, args.ssh_session)
    options["peers"] = peers(options.get("peers"))
    for key in ("secret", "tcp_port", "name"):
        if getattr(args, key):
            options[key] = getattr(args, key)
    try:
        scheduler = Scheduler(
            nodes=args.nodes,
            zombie_period=args.zombie_period or None,
            clean=args.clean,
            http_port=args.http,
            http_addr=args.http_addr,
            pulse_interval=pulse,
            **options,
        )
    except (OSError, ValueError) as exc:  # e.g. a port taken since the checks
        AsynCoro.instance().terminate()
        fail("discoro", f"cannot start the scheduler: {exc}", 1)
    print(f"discoro: scheduler ready at {scheduler.kernel.location}", flush=True)
    reason = wait_for_quit(events, scheduler)
    print(f"discoro: {reason}: stopping", flush=True)
    AsynCoro.instance().terminate()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "node":
        from discoro.cli import node

        return node.main(argv[1:])
    if argv and argv[0] == "status":
        from discoro.cli import status

        return status.main(argv[1:])
    if argv and argv[0] == "ssh":
        from discoro.cli import ssh

        return ssh.main(argv[1:])
    if argv and argv[0] == "slurm":
        from discoro.cli import slurm

        return slurm.main(argv[1:])
    if argv and argv[0] == "scheduler":
        argv = argv[1:]
    return run_scheduler(argv)


if __name__ == "__main__":
    sys.exit(main())
