"""The ``discoronode`` options of later versions (section 5, decision D11): service windows,
``--serve``, ``--daemon``, the node's timing rules, ``--tcp_ports``, ``--scheduler_port``
and ``--ping_interval``.

Rule: every value is checked here, before anything starts; `service_settings` raises
`ValueError` with one line that names the option (the program prints it and exits with
status 2). The defaults change nothing for a program of the seed's era: no window, no limit
on computations, no idle close of the node's own (0), pulse bounds that are the library's
(`MinPulseInterval`, `MaxPulseInterval`).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from discoro.cluster.constants import MaxPulseInterval, MinPulseInterval, MsgTimeout
from discoro.cluster.service_window import ServiceWindow

if TYPE_CHECKING:
    import argparse


def add_service_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("service (later versions' options)")
    add = group.add_argument
    add("--serve", type=int, default=-1, metavar="N", help="serve N computations, then exit")
    add("--service_start", metavar="HH:MM", help="daily start of service (default: now)")
    add("--service_stop", metavar="HH:MM", help="stop taking computations and jobs")
    add("--service_end", metavar="HH:MM", help="terminate the jobs still running")
    add("--daemon", action="store_true", help="read no commands on stdin (a service)")
    add(
        "--msg_timeout", type=float, default=MsgTimeout, metavar="SEC",
        help=f"longest wait for a pulse to be delivered (>= 1, default {MsgTimeout})",
    )  # fmt: skip
    add(
        "--min_pulse_interval", type=float, default=MinPulseInterval, metavar="SEC",
        help=f"refuse computations that pulse faster (default {MinPulseInterval})",
    )  # fmt: skip
    add(
        "--max_pulse_interval", type=float, default=MaxPulseInterval, metavar="SEC",
        help=f"pulse at least this often (default {MaxPulseInterval})",
    )  # fmt: skip
    add(
        "--zombie_period", type=float, default=0, metavar="SEC",
        help="close a computation that ran no job for this long (default 0: never)",
    )  # fmt: skip
    add_announce_options(group, "--scheduler_port", "schedulers")
    add(
        "--tcp_ports", action="append", default=[], metavar="N[-M]",
        help="TCP ports of the server processes in order (repeatable; N, N-M or a "
        "comma list); too few: continue after the last",
    )  # fmt: skip


def add_announce_options(group: argparse._ActionsContainer, port_option: str, whom: str) -> None:
    """``--ping_interval`` and the port announcements go to (both programs)."""
    group.add_argument(
        "--ping_interval", type=float, default=0, metavar="SEC",
        help=f"announce this process to the {whom} again every SEC seconds (0: with backoff)",
    )  # fmt: skip
    group.add_argument(
        port_option, type=int, metavar="PORT",
        help=f"UDP port the {whom} listen at (default: the same as -u)",
    )  # fmt: skip


def announce_options(ping_interval: float, port: int | None, option: str) -> dict[str, float]:
    """Network options for ``--ping_interval`` and the announce port (ValueError)."""
    options: dict[str, float] = {}
    if ping_interval < 0 or 0 < ping_interval < 1:
        raise ValueError(f"--ping_interval {ping_interval:g}: at least 1 second (or 0: off)")
    if ping_interval:
        options["announce_interval"] = ping_interval
    if port is not None:
        if not 0 < port < 65536:
            raise ValueError(f"{option} {port}: not a port number (1-65535)")
        options["announce_port"] = port
    return options


def parse_tcp_ports(items: list[str]) -> list[int]:
    """The ports of ``--tcp_ports`` values (each N, N-M, or a comma list), sorted."""
    ports: set[int] = set()
    for item in items:
        for part in item.split(","):
            text = part.strip()
            low, sep, high = text.partition("-")
            try:
                first, last = int(low), int(high if sep else low)
            except ValueError:
                raise ValueError(f"--tcp_ports {item}: expected N, N-M or N,M,...") from None
            if not 0 < first <= last < 65536:
                raise ValueError(f"--tcp_ports {item}: ports must be 1-65535, N <= M")
            ports.update(range(first, last + 1))
    return sorted(ports)


def ports_for(ports: list[int], count: int) -> list[int]:
    """One port per server process: the given ones, then consecutive ones after the last."""
    if not ports:
        return []
    chosen = ports[:count]
    while len(chosen) < count:
        chosen.append(chosen[-1] + 1)
    if chosen[-1] > 65535:
        raise ValueError(f"--tcp_ports: {count} processes need ports up to {chosen[-1]}")
    return chosen


@dataclass
class ServiceSettings:
    """What the service options amount to."""

    serve: int = -1
    window: ServiceWindow | None = None
    rules: dict[str, float] = field(default_factory=dict)  # NodeRules fields (JSON-able)
    network: dict[str, float] = field(default_factory=dict)  # extra AsynCoro options
    tcp_ports: list[int] = field(default_factory=list)


def service_settings(args: argparse.Namespace, count: int) -> ServiceSettings:
    """Check the service options of parsed ``args`` for ``count`` server processes."""
    if args.serve == 0 or args.serve < -1:
        raise ValueError(f"--serve {args.serve}: at least 1 computation (or -1: no limit)")
    if args.msg_timeout < 1:
        raise ValueError(f"--msg_timeout {args.msg_timeout:g}: at least 1 second")
    low, high = args.min_pulse_interval, args.max_pulse_interval
    if not MinPulseInterval <= low <= MaxPulseInterval:
        raise ValueError(
            f"--min_pulse_interval {low:g}: between {MinPulseInterval} and {MaxPulseInterval}"
        )
    if not low <= high <= MaxPulseInterval:
        raise ValueError(
            f"--max_pulse_interval {high:g}: between --min_pulse_interval ({low:g}) "
            f"and {MaxPulseInterval}"
        )
    zombie = args.zombie_period
    if zombie < 0 or 0 < zombie < low:
        raise ValueError(
            f"--zombie_period {zombie:g}: at least --min_pulse_interval ({low:g}), or 0: never"
        )
    now = datetime.datetime.now()
    window = ServiceWindow.from_options(
        args.service_start,
        args.service_stop,
        args.service_end,
        now.hour * 3600 + now.minute * 60 + now.second,
    )
    if args.tcp_ports and args.tcp_port:
        raise ValueError("--tcp_port and --tcp_ports: give one of them")
    rules: dict[str, float] = {"msg_timeout": args.msg_timeout}
    rules.update(min_pulse_interval=low, max_pulse_interval=high)
    if zombie:
        rules["zombie_period"] = zombie
    network = announce_options(args.ping_interval, args.scheduler_port, "--scheduler_port")
    ports = ports_for(parse_tcp_ports(args.tcp_ports), count)
    return ServiceSettings(args.serve, window, rules, network, ports)
