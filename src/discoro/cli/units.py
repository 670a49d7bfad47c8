"""systemd unit templates for running ``discoronode`` and the shared scheduler as services.

The templates are package data (``discoro/data/systemd/``); ``--print-systemd-unit`` prints
one with ``@BINDIR@`` replaced by the directory of the running program's scripts (so a
virtual environment's ``discoronode`` is the one the unit starts). Rule: the secret never
appears in a unit's command line; units read it from an ``EnvironmentFile``.
"""

from __future__ import annotations

import sysconfig
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

UNITS = {"discoronode": "discoronode.service", "discoro": "discoro-scheduler.service"}


def add_unit_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--print-systemd-unit", action="store_true",
        help="print a systemd unit file for running this program as a service, and exit",
    )  # fmt: skip


def unit_text(program: str, bindir: str | None = None) -> str:
    """The unit file of ``program`` (``discoronode`` or ``discoro``)."""
    template = resources.files("discoro").joinpath("data", "systemd", UNITS[program])
    where = bindir or sysconfig.get_path("scripts")
    return template.read_text(encoding="utf-8").replace("@BINDIR@", where)


def print_unit(program: str) -> int:
    print(unit_text(program), end="", flush=True)
    return 0
