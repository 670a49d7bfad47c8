"""``discoro status``: print what a scheduler knows about its cluster.

    discoro status [--scheduler HOST:PORT] [-i ADDR] [-u PORT] [-s SECRET] [--timeout SEC]
                   [--json] [--certfile F [--keyfile F] [--cafile F]] [--log-level L]

It starts a small client (bound to ``-i``, discovering on ``-u`` with the cluster's secret),
finds the coroutine registered as ``discoro_scheduler`` (at ``--scheduler``'s TCP location,
else whichever scheduler discovery finds first), sends it a `StatusQuery` and prints the
`StatusReport`: a table (totals, one row per node, then one per process with its running
coroutines) or, with ``--json``, the snapshot itself (layout: `discoro.cluster.snapshot`).
Exit status 0; 1 with a message on stderr if no scheduler answers within ``--timeout``; 2
with one line for a bad argument (an address not of this machine, a TLS file that does not
load). discoro's own log lines are at WARNING unless ``--log-level`` says otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from discoro.cli import checks
from discoro.cli.common import (
    DEFAULT_UDP_PORT,
    add_program_options,
    add_tls_options,
    configure_logging,
    fail,
    log_level,
    tls_options,
)


def parse_location(text: str) -> Any:
    from discoro.net.location import Location

    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--scheduler {text!r}: expected HOST:PORT")
    return Location(host, int(port))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="discoro status", description="Show the nodes, processes and coroutines of a "
        "discoro scheduler.",
    )  # fmt: skip
    parser.add_argument(
        "--scheduler", type=parse_location, metavar="HOST:PORT",
        help="the scheduler's TCP location (default: find it by discovery)",
    )  # fmt: skip
    parser.add_argument("-i", "--ip_addr", dest="node", metavar="ADDR", help="address to bind to")
    parser.add_argument(
        "-u", "--udp_port", type=int, default=DEFAULT_UDP_PORT,
        help=f"UDP port for discovery ({DEFAULT_UDP_PORT})",
    )  # fmt: skip
    parser.add_argument(
        "-s", "--secret", help="cluster secret (default: $DISCORO_SECRET, ~/.discoro/secret)"
    )
    parser.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the scheduler (10)"
    )
    parser.add_argument("--json", action="store_true", help="print the JSON snapshot")
    add_tls_options(parser)
    add_program_options(parser)
    return parser


def query(options: dict[str, Any], location: Any, timeout: float) -> dict[str, Any] | None:
    """Start this process's kernel with ``options``, ask the scheduler; its snapshot (None
    if none answered within ``timeout``)."""
    import discoro.net  # noqa: F401  (installs the network layer)
    from discoro.cluster import protocol as p
    from discoro.cluster.constants import SCHEDULER_NAME
    from discoro.core.coro import Coro
    from discoro.core.kernel import AsynCoro

    kernel = AsynCoro(name="discoro_status", **options)
    kernel.network()

    async def ask(coro: Any = None) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        scheduler = await Coro.locate(SCHEDULER_NAME, location, timeout=timeout)
        if not isinstance(scheduler, Coro):
            return None
        scheduler.send(p.StatusQuery(coro))
        while (remaining := deadline - time.monotonic()) > 0:
            reply = await coro.receive(remaining)
            if isinstance(reply, p.StatusReport):
                return reply.snapshot
        return None

    try:
        result: dict[str, Any] | None = Coro(ask).value()
        return result
    finally:
        kernel.terminate()


def _percent(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def _columns(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            for row in rows]  # fmt: skip


def _proc_state(proc: dict[str, object]) -> str:
    """A process's state, and how long its event loop has been stuck in user code."""
    stuck = proc.get("stuck")  # absent from an older scheduler's snapshot
    return f"{proc['state']} (stuck {stuck:g} s)" if stuck else str(proc["state"])


def format_table(snapshot: dict[str, Any]) -> str:
    """The snapshot as readable text: scheduler line, totals, nodes, processes."""
    info, totals = snapshot["scheduler"], snapshot["totals"]
    current = info["computation"] and (info.get("computation_name") or info["computation"])
    lines = [
        f"scheduler {info['name']} at {info['location']}: "
        + (
            f"computation {info.get('computation_name') or current}"
            if current
            else "no computation"
        )
        + f", {info['queued']} queued",
        f"totals: {totals['nodes']} nodes, {totals['procs']} processes, "
        f"{totals['submitted']} submitted, {totals['done']} done, {totals['running']} running",
        "",
    ]
    rows = [["NODE", "NAME", "PROCS", "STATE", "CPU%", "MEM%", "DISK%", "RUNNING", "DONE"]]
    for node in snapshot["nodes"]:
        rows.append(
            [node["addr"], node["name"], str(node["procs"]), node["state"], _percent(node["cpu"]),
             _percent(node["memory"]), _percent(node["disk"]), str(node["running"]),
             str(node["done"])]
        )  # fmt: skip
    lines += [*_columns(rows), ""]
    rows = [["PROCESS", "NAME", "STATE", "SUBMITTED", "RUNNING", "DONE"]]
    for proc in snapshot["procs"]:
        rows.append(
            [proc["location"], proc["name"], _proc_state(proc), str(proc["submitted"]),
             str(proc["running"]), str(proc["done"])]
        )  # fmt: skip
    lines += _columns(rows)
    for proc in snapshot["procs"]:
        for coro in proc["coros"]:
            since = time.strftime("%H:%M:%S", time.localtime(coro["start_time"]))
            lines.append(f"  {coro['coro']}  {coro['name']}({coro['args']})  since {since}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(log_level(args) or "WARNING")
    options: dict[str, Any] = {"udp_port": args.udp_port, **tls_options(args)}
    try:
        checks.local_address(args.node, "-i/--ip_addr")
        checks.tls_files(args.certfile, args.keyfile, args.cafile)
    except checks.OperatorError as exc:
        fail("discoro status", str(exc), 2)
    if args.node:
        options["node"] = args.node
    if args.secret:
        options["secret"] = args.secret
    snapshot = query(options, args.scheduler, args.timeout)
    if snapshot is None:
        where = f" at {args.scheduler}" if args.scheduler else ""
        print(
            f"discoro status: no scheduler{where} answered within {args.timeout:g} s "
            "(is it running, with the same secret and udp port?)",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(snapshot, indent=2) if args.json else format_table(snapshot), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
