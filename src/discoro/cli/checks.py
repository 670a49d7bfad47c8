"""Checks of a program's arguments before it starts anything: each raises `OperatorError`
with one line that names the option and the address, port or file at fault.

The checks bind the way the network layer will (TCP with SO_REUSEADDR, as asyncio's
servers; UDP with SO_REUSEADDR and SO_REUSEPORT, as discovery shares its port), so a port
that passes here is one the program can use, barring a race with another program.
"""

from __future__ import annotations

import os
import socket
import ssl
from pathlib import Path


class OperatorError(Exception):
    """A mistake in a program's arguments or environment: the message is for the operator."""


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def local_address(text: str | None, option: str) -> str:
    """The IPv4 address ``text`` names, if this machine has it ("" for None: the network
    layer's default)."""
    if text is None:
        return ""
    try:
        infos = socket.getaddrinfo(text, None, socket.AF_INET, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        reason = _reason(exc) if isinstance(exc, OSError) else str(exc)
        raise OperatorError(
            f"{option} {text}: not a known address or host name ({reason})"
        ) from None
    address = str(infos[0][4][0])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, 0))
        except OSError as exc:
            named = "" if address == text else f" ({address})"
            raise OperatorError(
                f"{option} {text}{named}: not an address of this machine ({_reason(exc)})"
            ) from None
    return address


def tcp_port_free(address: str, port: int, option: str) -> None:
    """Whether a server can listen at ``address:port`` (0: any port, always fine)."""
    if not 0 <= port < 65536:
        raise OperatorError(f"{option} {port}: not a port number (0-65535)")
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
            sock.listen(1)
        except OSError as exc:
            where = f"{address}:{port}" if address else f"port {port}"
            raise OperatorError(f"{option}: TCP {where} is not available: {_reason(exc)}") from None


def udp_port_free(port: int) -> None:
    """Whether discovery can share UDP ``port`` (taken by a program that does not share it:
    an error, since discovery is how the cluster's processes find each other)."""
    if not 0 <= port < 65536:
        raise OperatorError(f"-u/--udp_port {port}: not a port number (0-65535)")
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            sock.bind(("", port))
        except OSError as exc:
            raise OperatorError(
                f"-u/--udp_port: UDP port {port} is not available for discovery: "
                f"{_reason(exc)} (another program holds it; choose another port with -u)"
            ) from None


def _readable(path: str, option: str) -> None:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise OperatorError(f"{option} {path}: cannot read it ({_reason(exc)})") from None


def tls_files(certfile: str | None, keyfile: str | None, cafile: str | None) -> None:
    """Whether the TLS files exist and load (as the network layer will load them)."""
    if (keyfile or cafile) and not certfile:
        given = "--keyfile" if keyfile else "--cafile"
        raise OperatorError(f"{given} needs --certfile (TLS is on only with a certificate)")
    if certfile is None:
        return
    _readable(certfile, "--certfile")
    if keyfile:
        _readable(keyfile, "--keyfile")
    if cafile:
        _readable(cafile, "--cafile")
    from discoro.net import tls

    try:
        tls.contexts(certfile, keyfile, cafile)
    except (ssl.SSLError, ValueError, OSError) as exc:
        raise OperatorError(
            f"--certfile {certfile}"
            + (f" / --keyfile {keyfile}" if keyfile else "")
            + (f" / --cafile {cafile}" if cafile else "")
            + f": TLS cannot use them ({exc})"
        ) from None


def writable_directory(path: str, option: str) -> None:
    """Whether ``path`` is (or can be made) a directory we can write in."""
    target = Path(path)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OperatorError(f"{option} {path}: cannot create it ({_reason(exc)})") from None
    if not target.is_dir() or not os.access(target, os.W_OK | os.X_OK):
        raise OperatorError(f"{option} {path}: not a directory this user can write in")
