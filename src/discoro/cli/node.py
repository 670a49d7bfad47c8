"""``discoronode``: start the server processes of this node (reference 4).

Options are the seed's (``-c/--cpus``, ``-i/--ip_addr``, ``--ext_ip_addr``, ``-u/--udp_port``
(alias ``--urp_port``), ``-n/--name``, ``--dest_path``, ``--max_file_size``, ``-s/--secret``,
``--certfile``, ``--keyfile``, ``-d/--debug``) plus ``--cafile`` (verify peers'
certificates), ``--peer HOST[:PORT]`` (repeatable, for networks without broadcast),
``--tcp_port`` (process *i* listens on PORT+i-1), ``--clean``, ``--log-level`` and
``--version``, and the later versions' service options (`node_options`: ``--serve``,
``--service_start/stop/end``, ``--daemon``, ``--msg_timeout``, pulse bounds,
``--zombie_period``, ``--ping_interval``, ``--tcp_ports``, ``--scheduler_port``).
``--config FILE``/``--save_config FILE`` read/write the options (`config_file`);
``--print-systemd-unit`` prints the unit file template for running it as a service.
The default ``--dest_path`` is this user's own (`procdir.user_root`).
Arguments are checked before any process starts (`common.preflight`: one line and exit
status 2 on a mistake). Stop it with Ctrl-C, SIGTERM, or a ``quit``/``exit`` line on stdin
(the stdin commands are in `discoro.cluster.node`).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

from discoro.cli.common import (
    ArgumentParser,
    add_network_options,
    configure_logging,
    fail,
    log_level,
    network_options,
    parse_peer,
    preflight,
)
from discoro.cli.config_file import add_config_options, apply_config, save_config
from discoro.cli.node_options import add_service_options, service_settings
from discoro.cli.session import SESSION_GRACE, add_session_option, enter_session
from discoro.cli.units import add_unit_option, print_unit
from discoro.cluster import procdir
from discoro.cluster.node import Node, NodeConfig

__all__ = ["available_cpus", "build_parser", "main", "parse_peer", "process_count"]


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


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="discoronode", description="Start discoro server processes on this node."
    )
    parser.add_argument(
        "-c", "--cpus", type=int, default=0,
        help="server processes: N>0 exactly N, N<0 all processors but -N, 0 one per processor",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true", help="allow more processes than processors")
    parser.add_argument(
        "--net-thread", dest="net_thread", action=argparse.BooleanOptionalAction, default=True,
        help="run each server's network on a thread of its own, so a job that blocks its "
        "loop cannot stop messages and files (default); --no-net-thread: on the loop "
        "(faster round trips; DISCORO_NET_THREAD=0|1 overrides both)",
    )  # fmt: skip
    add_network_options(parser, "discoronode")
    add_service_options(parser)
    add_config_options(parser)
    add_unit_option(parser)
    add_session_option(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.print_systemd_unit:
        return print_unit("discoronode")
    try:
        if args.config:
            apply_config(parser, args, args.config)
        count = process_count(args.cpus, available_cpus(), args.force)
        service = service_settings(args, count)
        if args.save_config:
            save_config(parser, args, args.save_config)
    except ValueError as exc:
        fail("discoronode", str(exc), 2)
    if args.save_config:
        print(f"discoronode: options saved to {args.save_config}", flush=True)
        return 0
    enter_session(args)
    level = log_level(args)
    configure_logging(level)
    first = args.tcp_port
    ports = service.tcp_ports or ([first + i for i in range(count)] if first else [])
    options = network_options(args)
    options.update(service.network)
    options = preflight("discoronode", options, ports, None)
    if args.clean:
        for path in procdir.clean(options):
            print(f"discoronode: removed {path}", flush=True)
    config = NodeConfig(
        count=count,
        prefix=args.name or socket.gethostname() or "discoro_proc",
        options=options,
        secret=args.secret,
        tcp_port=args.tcp_port,
        log_level=level,
        tcp_ports=service.tcp_ports,
        daemon=args.daemon,
        serve=service.serve,
        window=service.window,
        rules=service.rules,
        net_thread=args.net_thread,
    )
    if args.ssh_session:
        config.quit_at_eof, config.grace = True, SESSION_GRACE
    return Node(config).run()


if __name__ == "__main__":
    sys.exit(main())
