"""``--config FILE`` and ``--save_config FILE`` (later versions, section 5): a program's
options in the ``[DEFAULT]`` section of an INI file, keys named as the options' destinations
(``cpus``, ``udp_port``, ``service_start``, ...), lists written as Python list text.

Rules: an option given on the command line with a value other than its default wins over the
file; a key that is no option, or a value of the wrong type, is a mistake named in one line
(`ValueError`). Values are parsed, never evaluated (`ast.literal_eval` for lists). The secret
is never written to a file by ``--save_config`` (pass it as ``DISCORO_SECRET`` or in
``~/.discoro/secret``); one read from a file is used.
"""

from __future__ import annotations

import argparse
import ast
import configparser
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator

NOT_SAVED = {"config", "save_config", "secret", "print_systemd_unit", "help", "version"}


def add_config_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="read options from this INI file")
    parser.add_argument(
        "--save_config", metavar="FILE", help="write the options to this INI file and exit"
    )


def _options(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    for action in parser._actions:
        if action.dest not in NOT_SAVED and action.option_strings:
            yield action


def _convert(action: argparse.Action, text: str) -> object:
    if isinstance(
        action,
        argparse._StoreTrueAction | argparse._StoreFalseAction | argparse.BooleanOptionalAction,
    ):
        lowered = text.strip().lower()
        if lowered not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError(f"expected True or False, not {text!r}")
        return lowered in ("true", "1", "yes")
    if isinstance(action, argparse._AppendAction):
        try:
            items = ast.literal_eval(text.strip() or "[]")
        except (ValueError, SyntaxError):
            raise ValueError(f"expected a list like ['a', 'b'], not {text!r}") from None
        if not isinstance(items, list):
            raise ValueError(f"expected a list like ['a', 'b'], not {text!r}")
        convert = action.type if callable(action.type) else str
        return [convert(str(item)) for item in items]
    if text.strip() in ("", "None"):
        return None
    convert = action.type if callable(action.type) else str
    return convert(text.strip())


def apply_config(parser: argparse.ArgumentParser, args: argparse.Namespace, path: str) -> None:
    """Fill ``args`` from the file at ``path`` where the command line left the default."""
    config = configparser.ConfigParser(interpolation=None)
    try:
        with open(path, encoding="utf-8") as stream:
            config.read_file(stream)
    except (OSError, configparser.Error) as exc:
        raise ValueError(f"--config {path}: cannot read it ({exc})") from None
    actions = {action.dest: action for action in parser._actions if action.option_strings}
    for key, text in config.defaults().items():
        action = actions.get(key)
        if action is None or key in ("config", "save_config", "help", "version"):
            raise ValueError(f"--config {path}: {key!r} is not an option of {parser.prog}")
        try:
            value = _convert(action, text)
        except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
            raise ValueError(f"--config {path}: {key}: {exc}") from None
        if getattr(args, key) == action.default:
            setattr(args, key, value)


def _item_text(item: object) -> str:
    """A list item as its option text (a ``[host, port]`` peer as ``host:port``)."""
    if isinstance(item, list | tuple):
        return ":".join(str(part) for part in item)
    return str(item)


def save_config(parser: argparse.ArgumentParser, args: argparse.Namespace, path: str) -> None:
    config = configparser.ConfigParser(interpolation=None)
    for action in _options(parser):
        value = getattr(args, action.dest, None)
        if isinstance(value, list):
            value = repr([_item_text(item) for item in value])
        config["DEFAULT"][action.dest] = "" if value is None else str(value)
    try:
        with open(path, "w", encoding="utf-8") as stream:
            config.write(stream)
    except OSError as exc:
        raise ValueError(f"--save_config {path}: cannot write it ({exc})") from None
