"""What the programs share: ``discoronode``, ``discoro`` and ``discoro status`` take the same
program options (``--version``, ``--log-level``, ``-d``), network options and TLS options.

Rule: an operator's mistake ends a program with one line on stderr that names the problem
(the option, address, port or file) and a non-zero exit status, never a traceback. Problems
visible in the arguments (an address that is not this machine's, a port already in use, a
certificate that does not load) are found by `preflight` before anything starts: exit
status 2, as for any bad argument. What only shows while starting (a port taken meanwhile)
is caught where it happens and reported the same way with exit status 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, NoReturn

from discoro.cli import checks
from discoro.cluster import procdir

DEFAULT_UDP_PORT = 51350
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def package_version() -> str:
    from importlib import metadata  # here: ~17 ms of imports a program start need not pay

    try:
        return metadata.version("discoro")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "0+unknown"


def fail(program: str, message: str, status: int = 1) -> NoReturn:
    """End the program with one line (see the module rule)."""
    print(f"{program}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(status)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with the module's rule: a mistake is one line (and a pointer to --help)."""

    def error(self, message: str) -> NoReturn:
        fail(self.prog, f"{message} (see {self.prog} --help)", 2)


def parse_peer(text: str) -> str | list[str | int]:
    """``HOST`` (introduced by UDP) or ``HOST:PORT`` (dialled at that TCP port)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--peer {text!r}: expected HOST or HOST:PORT")
    return [host, int(port)]


SIZE_SUFFIXES = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes of ``N`` or ``N`` with a suffix k/m/g/t (later versions' ``--max_file_size``)."""
    value = text.strip().lower()
    factor = SIZE_SUFFIXES.get(value[-1:], 1)
    number = value[:-1] if factor > 1 else value
    if not number.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected bytes, e.g. 1048576 or 1m")
    return int(number) * factor


def add_program_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS, metavar="LEVEL",
        help="level of discoro's log lines: DEBUG, INFO (default), WARNING, ERROR",
    )  # fmt: skip
    parser.add_argument("-d", "--debug", action="store_true", help="the same as --log-level DEBUG")


def log_level(args: argparse.Namespace) -> str | None:
    """The level asked for (``-d`` is DEBUG), or None."""
    return "DEBUG" if args.debug else args.log_level


def configure_logging(level: str | None) -> None:
    """Set discoro's log level and make sure its lines show (a program of ours configures
    no other logging)."""
    from discoro.core.log import ensure_handler, logger

    if level:
        logger.setLevel(getattr(logging, level))
    ensure_handler()


def add_tls_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--certfile", help="TLS: this process's certificate (PEM)")
    parser.add_argument("--keyfile", help="TLS: its private key (if not in --certfile)")
    parser.add_argument(
        "--cafile", help="TLS: CA certificates that peers' certificates must be signed by "
        "(without it peers' certificates are not verified)",
    )  # fmt: skip


def add_network_options(parser: argparse.ArgumentParser, program: str) -> None:
    """The options ``discoronode`` and ``discoro`` share (AsynCoro's, reference 2.2);
    ``program`` tailors the help."""
    node = program == "discoronode"
    parser.add_argument("-i", "--ip_addr", dest="node", metavar="ADDR", help="address to bind to")
    parser.add_argument("--ext_ip_addr", metavar="ADDR", help="address advertised to peers (NAT)")
    parser.add_argument(
        "-u", "--udp_port", "--urp_port", dest="udp_port", type=int, default=DEFAULT_UDP_PORT,
        help=f"UDP port for discovery (default {DEFAULT_UDP_PORT})",
    )  # fmt: skip
    parser.add_argument(
        "--tcp_port", type=int, default=0,
        help="TCP port of process 1 (process i listens on PORT+i-1; default 0: any free port)"
        if node else "TCP port (default 0: any free port)",
    )  # fmt: skip
    parser.add_argument(
        "-n", "--name",
        help="name prefix of the server processes (default: the host name)"
        if node else "name of this process",
    )  # fmt: skip
    parser.add_argument(
        "--dest_path",
        help=f"root directory for received files (default {procdir.user_root_text()})",
    )
    parser.add_argument(
        "--max_file_size", type=parse_size, metavar="SIZE",
        help="largest file accepted: bytes, or with a suffix k, m, g, t (powers of 1024)",
    )  # fmt: skip
    parser.add_argument(
        "-s", "--secret", help="cluster secret (default: $DISCORO_SECRET, ~/.discoro/secret)"
    )
    add_tls_options(parser)
    parser.add_argument(
        "--peer", action="append", type=parse_peer, default=[], metavar="HOST[:PORT]",
        help="a peer that broadcasts cannot reach (repeatable)",
    )  # fmt: skip
    parser.add_argument("--clean", action="store_true", help="remove stale files first")
    add_program_options(parser)


def tls_options(args: argparse.Namespace) -> dict[str, str]:
    """The TLS files given, as absolute paths (server processes change directory)."""
    return {
        key: os.path.abspath(getattr(args, key))
        for key in ("certfile", "keyfile", "cafile")
        if getattr(args, key, None)
    }


#: AsynCoro's keyword options, as the programs build them (JSON-able: the node passes them on)
Options = dict[str, Any]


def network_options(args: argparse.Namespace) -> Options:
    """JSON-able AsynCoro options from the parsed arguments (paths made absolute: server
    processes change directory; the default ``dest_path`` is this user's own)."""
    options: Options = {"udp_port": args.udp_port}
    for key in ("node", "ext_ip_addr", "max_file_size"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    options["dest_path"] = os.path.abspath(args.dest_path) if args.dest_path else None
    options.update(tls_options(args))
    if args.peer:
        options["peers"] = args.peer
    return options


def preflight(
    program: str, options: Options, tcp_ports: list[int], http: tuple[str, int] | None
) -> Options:
    """Check ``options`` before anything starts (see the module rule); ``options`` with the
    default ``dest_path`` filled in. Exits with one line on the first problem."""
    try:
        addr = checks.local_address(options.get("node"), "-i/--ip_addr")
        for port in tcp_ports:
            checks.tcp_port_free(addr, port, "--tcp_port")
        if http is not None:
            checks.tcp_port_free(checks.local_address(http[0], "--http_addr"), http[1], "--http")
        checks.udp_port_free(options.get("udp_port", DEFAULT_UDP_PORT))
        checks.tls_files(options.get("certfile"), options.get("keyfile"), options.get("cafile"))
        if options.get("dest_path") is None:
            try:
                options["dest_path"] = str(procdir.user_root())
            except (OSError, ValueError) as exc:
                raise checks.OperatorError(f"the default --dest_path: {exc}") from None
        else:
            checks.writable_directory(options["dest_path"], "--dest_path")
    except checks.OperatorError as exc:
        fail(program, str(exc), 2)
    return options
