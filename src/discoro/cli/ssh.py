"""``discoro ssh``: start a cluster on other machines over SSH and keep it until told to stop.

    discoro ssh [--ssh-port N] [--ssh-user USER] [--ssh-key PATH] [--known-hosts PATH]
                [--python PATH] [-s SECRET] [-c N] [--node-options "..."]
                [--scheduler-options "..."] HOST [HOST ...]

The first host runs the shared scheduler and a node, every other host a node
(`discoro.cluster.ssh_launch`). It prints one line per host as it comes up, then
``scheduler at ADDR:PORT``, and stays in the foreground until SIGINT/SIGTERM, which stop
every remote program it started (exit status 0; a second signal closes the connections at
once, and the remote programs stop by themselves), or until the scheduler ends by itself
(exit status 1). A host that cannot be reached or used is one line on stderr naming it, and
exit status 1 (after stopping whatever had started); a bad argument is exit status 2. If this
program is killed, the remote programs see their SSH sessions end and stop by themselves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys

from discoro.cli.common import add_program_options, configure_logging, fail, log_level
from discoro.cluster.ssh import default_secret
from discoro.cluster.ssh_commands import split_options
from discoro.cluster.ssh_launch import Launcher, LaunchError, LaunchSpec

DESCRIPTION = """\
Start a discoro cluster over SSH: the first HOST runs the shared scheduler (the `discoro`
program) and a node, every other HOST a node (`discoronode`). The remote programs run as
`PYTHON -m discoro.cli.node` / `-m discoro.cli.scheduler`, are tied to their SSH sessions
(they stop when this program stops or dies), and get the secret on stdin, never on their
command line (default secret: this machine's, $DISCORO_SECRET or ~/.discoro/secret)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="discoro ssh", description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("hosts", nargs="+", metavar="HOST", help="one node per host ([USER@]HOST)")
    parser.add_argument("--ssh-port", type=int, default=22, metavar="N", help="SSH port (22)")
    parser.add_argument("--ssh-user", metavar="USER", help="remote user (default: SSH's)")
    parser.add_argument("--ssh-key", action="append", metavar="PATH", help="private key file")
    parser.add_argument(
        "--known-hosts", metavar="PATH",
        help="pinned host keys (default: ~/.ssh/known_hosts); an unknown host key fails",
    )  # fmt: skip
    parser.add_argument(
        "--python", default="python3", metavar="PATH",
        help="remote interpreter that has discoro installed (default python3)",
    )  # fmt: skip
    parser.add_argument("-s", "--secret", help="cluster secret (default: this machine's)")
    parser.add_argument("-c", "--cpus", type=int, metavar="N", help="server processes per node")
    parser.add_argument(
        "--node-options", default="", metavar='"..."', help="more discoronode arguments"
    )
    parser.add_argument(
        "--scheduler-options", default="", metavar='"..."', help="more discoro arguments"
    )
    parser.add_argument(
        "--connect-timeout", type=float, default=10.0, metavar="SEC",
        help="seconds for each SSH connection (10)",
    )  # fmt: skip
    parser.add_argument(
        "--start-timeout", type=float, default=60.0, metavar="SEC",
        help="seconds for each remote program to be ready (60)",
    )  # fmt: skip
    add_program_options(parser)
    return parser


def say(line: str) -> None:
    print(f"discoro ssh: {line}", flush=True)


async def run(spec: LaunchSpec) -> int:
    """Start the cluster, wait for a signal (or the scheduler's end), stop it; exit status."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reasons: list[str] = []

    launcher = Launcher(spec, say)

    def on_signal(name: str) -> None:
        if stop.is_set():  # a second signal: do not wait for the remote programs
            say(f"{name}: closing the SSH connections")
            launcher.abort()
        reasons.append(name)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signal.Signals(signum).name)
    starting = asyncio.ensure_future(launcher.start())
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait([starting, stopped], return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():  # a signal while starting: start() stops what it started
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, LaunchError):
            await starting
        say(f"{reasons[0]}: stopped")
        return 1
    try:
        location = starting.result()
    except LaunchError as exc:
        stopped.cancel()
        print(f"discoro ssh: error: {exc}", file=sys.stderr, flush=True)
        return 1
    say(f"scheduler at {location}")
    status = 0
    while not stop.is_set():
        lost = asyncio.ensure_future(launcher.lost.get())
        await asyncio.wait([lost, stopped], return_when=asyncio.FIRST_COMPLETED)
        if lost.done() and lost.result().role == "scheduler":
            reasons.append("the scheduler ended")
            status = 1
            break
        lost.cancel()
    stopped.cancel()
    say(f"{reasons[0]}: stopping")
    await launcher.stop()
    say("stopped")
    return status


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(log_level(args) or "WARNING")
    connect_options: dict[str, object] = {"port": args.ssh_port}
    if args.ssh_user:
        connect_options["username"] = args.ssh_user
    if args.ssh_key:
        connect_options["client_keys"] = args.ssh_key
    if args.known_hosts:
        connect_options["known_hosts"] = args.known_hosts
    try:
        for path, option in [(key, "--ssh-key") for key in args.ssh_key or ()] + [
            (args.known_hosts, "--known-hosts")
        ]:
            if path and not os.path.isfile(path):
                raise ValueError(f"{option} {path}: no such file")
        node_options = split_options(args.node_options, "--node-options")
        if args.cpus is not None:
            node_options = ["-c", str(args.cpus), *node_options]
        spec = LaunchSpec(
            hosts=args.hosts,
            connect_options=connect_options,
            node_options=node_options,
            scheduler_options=split_options(args.scheduler_options, "--scheduler-options"),
            remote_python=args.python,
            secret=args.secret or default_secret(),
            connect_timeout=args.connect_timeout,
            start_timeout=args.start_timeout,
        )
        spec.check()
    except (ValueError, OSError) as exc:
        fail("discoro ssh", str(exc), 2)
    return asyncio.run(run(spec))


if __name__ == "__main__":
    sys.exit(main())
