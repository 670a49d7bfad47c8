"""``discoro slurm --print``: the shell lines that start a cluster in a Slurm allocation.

    eval "$(discoro slurm --print [--port N] [--python PATH] [-c N] [--node-options "..."]
                                   [--scheduler-options "..."])"

Run in a batch script (on the allocation's first host): it starts the shared scheduler there
and one ``discoronode`` per allocated host through ``srun``, exports ``DISCORO_SCHEDULER``
(``host:port``, for ``Computation.schedule``) and stops both when the script exits
(`discoro.cluster.slurm`). Outside an allocation, or with a bad argument: one line on stderr
and exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys

from discoro.cli.common import fail
from discoro.cluster.slurm import DEFAULT_SCHEDULER_PORT, script, slurm_commands
from discoro.cluster.ssh_commands import split_options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="discoro slurm",
        description="Print the shell lines that start a discoro cluster in this Slurm "
        'allocation: eval "$(discoro slurm --print)" in a batch script.',
    )
    parser.add_argument("--print", action="store_true", required=True, help="print the lines")
    parser.add_argument(
        "--port", type=int, default=DEFAULT_SCHEDULER_PORT,
        help=f"the scheduler's TCP port (default {DEFAULT_SCHEDULER_PORT})",
    )  # fmt: skip
    parser.add_argument(
        "--python", metavar="PATH",
        help="interpreter that has discoro on every host (default: this one)",
    )  # fmt: skip
    parser.add_argument(
        "-c", "--cpus", type=int, metavar="N",
        help="server processes per node (default: $SLURM_CPUS_PER_TASK, else one per CPU)",
    )  # fmt: skip
    parser.add_argument("--node-options", default="", metavar='"..."', help="discoronode args")
    parser.add_argument("--scheduler-options", default="", metavar='"..."', help="discoro args")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        node_options = split_options(args.node_options, "--node-options")
        if args.cpus is not None:
            node_options = ["-c", str(args.cpus), *node_options]
        commands = slurm_commands(
            os.environ,
            python=args.python,
            port=args.port,
            node_options=node_options,
            scheduler_options=split_options(args.scheduler_options, "--scheduler-options"),
        )
    except ValueError as exc:
        fail("discoro slurm", str(exc), 2)
    print(script(commands), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
