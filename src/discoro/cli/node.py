"""``discoronode``: start the server processes of this node (reference 4).

Options are the seed's (``-c/--cpus``, ``-i/--ip_addr``, ``--ext_ip_addr``, ``-u/--udp_port``
(alias ``--urp_port``), ``-n/--name``, ``--dest_path``, ``--max_file_size``, ``-s/--secret``,
``--certfile``, ``--keyfile``, ``-d/--debug``) plus ``--peer HOST[:PORT]`` (repeatable, for
networks without broadcast), ``--tcp_port`` (process *i* listens on PORT+i-1) and ``--clean``.
Stop it with Ctrl-C, SIGTERM, or a ``quit``/``exit`` line on stdin.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from typing import Any

from discoro.cluster import procdir
from discoro.cluster.node import Node, NodeConfig


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def process_count(cpus: int, available: int, force: bool = False) -> int:
    """The number of server processes for ``-c cpus`` (ValueError if it makes no sense)."""
    if cpus > 0:
        if cpus > available and not force:
            raise ValueError(
                f"-c {cpus}: this machine has only {available} processor(s) "
                "(--force runs more processes than processors)"
            )
        return cpus
    if cpus < 0:
        count = available + cpus
        if count < 1:
            raise ValueError(
                f"-c {cpus}: leaving {-cpus} of {available} processor(s) unused "
                "leaves none to run servers"
            )
        return count
    return available


def parse_peer(text: str) -> str | list[Any]:
    """``HOST`` (introduced by UDP) or ``HOST:PORT`` (dialled at that TCP port)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--peer {text!r}: expected HOST or HOST:PORT")
    return [host, int(port)]


def add_network_options(parser: argparse.ArgumentParser) -> None:
    """The options ``discoronode`` and ``discoro`` share (AsynCoro's, reference 2.2)."""
    parser.add_argument("-i", "--ip_addr", dest="node", help="address to bind to")
    parser.add_argument("--ext_ip_addr", help="address advertised to peers (NAT)")
    parser.add_argument(
        "-u", "--udp_port", "--urp_port", dest="udp_port", type=int, default=51350,
        help="UDP port for discovery (default 51350)",
    )  # fmt: skip
    parser.add_argument(
        "--tcp_port", type=int, default=0,
        help="TCP port (discoronode: of process 1, process i uses PORT+i-1); 0: any free port",
    )  # fmt: skip
    parser.add_argument(
        "-n", "--name", help="instance name (discoronode: name prefix, default the host name)"
    )
    parser.add_argument("--dest_path", help="root directory for received files")
    parser.add_argument("--max_file_size", type=int, help="largest file accepted (bytes)")
    parser.add_argument(
        "-s", "--secret", help="cluster secret (default: $DISCORO_SECRET, ~/.discoro/secret)"
    )
    parser.add_argument("--certfile", help="TLS certificate")
    parser.add_argument("--keyfile", help="TLS key")
    parser.add_argument(
        "--peer", action="append", type=parse_peer, default=[], metavar="HOST[:PORT]",
        help="a peer that broadcasts cannot reach (repeatable)",
    )  # fmt: skip
    parser.add_argument("--clean", action="store_true", help="remove stale files first")
    parser.add_argument("-d", "--debug", action="store_true", help="debug log messages")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="discoronode", description="Start discoro server processes on this node."
    )
    parser.add_argument(
        "-c", "--cpus", type=int, default=0,
        help="server processes: N>0 exactly N, N<0 all processors but -N, 0 one per processor",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true", help="allow more processes than processors")
    add_network_options(parser)
    return parser


def network_options(args: argparse.Namespace) -> dict[str, Any]:
    """JSON-able AsynCoro options from the parsed arguments (paths made absolute: server
    processes change directory)."""
    options: dict[str, Any] = {"udp_port": args.udp_port}
    for key in ("node", "ext_ip_addr", "max_file_size"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    for key in ("dest_path", "certfile", "keyfile"):
        if getattr(args, key):
            options[key] = os.path.abspath(getattr(args, key))
    if args.peer:
        options["peers"] = args.peer
    return options


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        count = process_count(args.cpus, available_cpus(), args.force)
    except ValueError as exc:
        parser.error(str(exc))
    if args.debug:
        from discoro.core.log import logger

        logger.setLevel(logging.DEBUG)
    options = network_options(args)
    if args.clean:
        for path in procdir.clean(options):
            print(f"discoronode: removed {path}", flush=True)
    config = NodeConfig(
        count=count,
        prefix=args.name or socket.gethostname() or "discoro_proc",
        options=options,
        secret=args.secret,
        tcp_port=args.tcp_port,
        debug=args.debug,
    )
    return Node(config).run()


if __name__ == "__main__":
    sys.exit(main())
