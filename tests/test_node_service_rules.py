"""The rules behind the node's service options, as tables without processes: the service
window's phases, ``--tcp_ports``, ``--config``/``--save_config``, and the node's rules
inside a server process (`ServerState` with `NodeRules`)."""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING

import pytest

from discoro.cli.common import parse_size
from discoro.cli.config_file import apply_config, save_config
from discoro.cli.node import build_parser
from discoro.cli.node_options import parse_tcp_ports, ports_for
from discoro.cluster import server_lifecycle as lc
from discoro.cluster.serve_count import ServeCount
from discoro.cluster.server_state import Installed, NodeRules, ServerState
from discoro.cluster.service_window import (
    DAY,
    Phase,
    ServiceWindow,
    format_time_of_day,
    parse_time_of_day,
)

if TYPE_CHECKING:
    from pathlib import Path

H = 3600


def test_time_of_day() -> None:
    assert parse_time_of_day("0:00") == 0
    assert parse_time_of_day("07:30") == 7 * H + 30 * 60
    assert parse_time_of_day("23:59:59") == DAY - 1
    assert format_time_of_day(7 * H + 5) == "07:00:05"
    for bad in ("24:00", "7:60", "7", "seven", "7:00:60", ""):
        with pytest.raises(ValueError, match="not a time of day"):
            parse_time_of_day(bad)


@pytest.mark.parametrize(
    ("now", "phase", "change_in"),
    [
        (8 * H, Phase.SERVING, 9 * H),  # start 08:00, stop 17:00, end 18:00
        (16 * H + 59 * 60, Phase.SERVING, 60),
        (17 * H, Phase.STOPPING, H),
        (18 * H, Phase.OFF, 14 * H),
        (2 * H, Phase.OFF, 6 * H),  # after midnight: off until 08:00
    ],
)
def test_day_window(now: int, phase: Phase, change_in: int) -> None:
    window = ServiceWindow.from_options("08:00", "17:00", "18:00", now=0)
    assert window is not None
    assert window.phase(now) == (phase, change_in)


def test_night_window_runs_across_midnight() -> None:
    window = ServiceWindow.from_options("22:00", "05:00", "06:00", now=0)
    assert window is not None
    assert window.phase(23 * H) == (Phase.SERVING, 6 * H)
    assert window.phase(4 * H) == (Phase.SERVING, H)
    assert window.phase(5 * H + 30 * 60) == (Phase.STOPPING, 30 * 60)
    assert window.phase(12 * H) == (Phase.OFF, 10 * H)


def test_window_without_start_stop_or_end() -> None:
    assert ServiceWindow.from_options(None, None, None, now=0) is None
    only_end = ServiceWindow.from_options(None, None, "18:00", now=9 * H)
    assert only_end == ServiceWindow(9 * H, None, 18 * H)  # starts when the node starts
    assert only_end.phase(10 * H) == (Phase.SERVING, 8 * H)
    assert only_end.phase(19 * H) == (Phase.OFF, 14 * H)
    only_stop = ServiceWindow.from_options("08:00", "17:00", None, now=0)
    assert only_stop is not None
    assert only_stop.phase(20 * H) == (Phase.STOPPING, 12 * H)  # until the next start


@pytest.mark.parametrize(
    ("start", "stop", "end", "message"),
    [
        ("08:00", None, None, "needs --service_stop or --service_end"),
        ("08:00", "08:00", None, "--service_stop is the same time as --service_start"),
        ("08:00", "09:00", "08:30", "--service_stop must come before --service_end"),
        ("08:00", "9am", None, "--service_stop: '9am' is not a time of day"),
    ],
)
def test_bad_windows(start: str, stop: str | None, end: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ServiceWindow.from_options(start, stop, end, now=0)


def test_max_file_size_takes_suffixes() -> None:
    assert [parse_size(t) for t in ("512", "2k", "3M", "1g", "1t")] == [
        512, 2048, 3 << 20, 1 << 30, 1 << 40,
    ]  # fmt: skip
    for bad in ("", "k", "1.5m", "-1", "12x"):
        with pytest.raises(argparse.ArgumentTypeError, match="expected bytes"):
            parse_size(bad)


def test_tcp_ports() -> None:
    assert parse_tcp_ports(["51347"]) == [51347]
    assert parse_tcp_ports(["9000-9002", "8000,8001"]) == [8000, 8001, 9000, 9001, 9002]
    assert ports_for([8000, 9000], 4) == [8000, 9000, 9001, 9002]  # continue after the last
    assert ports_for([8000, 8001, 8002], 2) == [8000, 8001]
    assert ports_for([], 3) == []
    with pytest.raises(ValueError, match="need ports up to 65536"):
        ports_for([65535], 2)


def state(**rules: float) -> ServerState:
    return ServerState(NodeRules.from_dict(rules))


def install(server: ServerState, uid: str, interval: float, zombie: float | None) -> Installed:
    """Install ``uid`` through the lifecycle table, as the server's shell does."""
    assert server.handle(lc.SetupAsked(uid, 1, 0, interval)) == [lc.InstallComputation(1)]
    record = server.record(uid, "s", interval, zombie, None, 0, 1)
    assert server.handle(lc.SetupSucceeded(record, 0)) == [lc.AnswerSetup(1)]
    return record


def close(server: ServerState, uid: str) -> None:
    actions = server.handle(lc.CloseAsked(uid, 0))
    assert [type(action) for action in actions] == [lc.CloseComputation]


def test_serve_limit_refuses_another_computation() -> None:
    server = state(serve=1)
    assert server.setup_refusal("A", 1) is None
    install(server, "A", 1, None)
    assert server.setup_refusal("A", 1) is None  # a repeated Setup
    close(server, "A")
    assert server.setup_refusal("A", 1) is None  # the same computation again
    assert server.setup_refusal("B", 1) == "the node serves only 1 computation(s) (--serve)"
    refused = lc.AnswerSetup(2, "the node serves only 1 computation(s) (--serve)")
    assert server.handle(lc.SetupAsked("B", 2, 0, 1)) == [refused]  # the table asks the rule


def test_pulse_bounds_and_zombie_period() -> None:
    server = state(min_pulse_interval=5, max_pulse_interval=20, zombie_period=30)
    assert "below the node's --min_pulse_interval 5" in str(server.setup_refusal("A", 2))
    assert server.setup_refusal("A", 5) is None
    installed = install(server, "A", 50, None)
    assert installed.pulse_interval == 20  # pulses at least as often as the node's maximum
    assert installed.zombie_period == 30  # the node's idle rule, the computation has none
    assert not server.zombie_due(29) and server.zombie_due(30)
    assert server.handle(lc.Tick(29)) == []
    assert [type(action) for action in server.handle(lc.Tick(30))] == [lc.CloseComputation]
    assert install(server, "B", 10, 1800).zombie_period == 30  # the shorter
    with pytest.raises(ValueError, match="unknown node rule 'bogus'"):
        NodeRules.from_dict({"bogus": 1})


def test_drain_refuses_jobs_and_closes_when_none_runs() -> None:
    server = state()
    assert not server.drain()  # nothing installed: nothing to close
    assert server.setup_refusal("A", 1) is None
    install(server, "A", 1, None)
    server.handle(lc.JobStarted(type("Job", (), {"_id": 7})(), 0))
    assert server.drain()
    assert "no new jobs" in str(server.run_refusal("A"))
    assert server.handle(lc.RunAsked("A", 0)) == [lc.RefuseRun(str(server.run_refusal("A")))]
    assert server.setup_refusal("B", 1) == "busy with computation A"
    assert not server.zombie_due(0) and server.wait_time(0) is None  # a job still runs
    server.handle(lc.JobEnded(7, 1))
    assert server.zombie_due(1) and server.wait_time(1) == 0.0
    assert [type(action) for action in server.handle(lc.Tick(1))] == [lc.CloseComputation]
    assert not server.draining and server.setup_refusal("B", 1) is None  # serves again
    server.retired = "outside the service window"
    assert server.setup_refusal("B", 1) == "outside the service window"


def test_config_file_round_trip_and_command_line_wins(tmp_path: Path) -> None:
    parser = build_parser()
    given = ["-c", "1", "--serve", "3", "--service_end", "18:00", "--peer", "10.0.0.2:9000"]
    given += ["--peer", "h2", "--tcp_ports", "9000-9001", "--daemon", "-s", "SECRET"]
    args = parser.parse_args(given)
    path = tmp_path / "node.ini"
    save_config(parser, args, str(path))
    text = path.read_text()
    assert "SECRET" not in text and "secret" not in text  # never written to a file
    again = parser.parse_args(["-c", "2", "--config", str(path)])
    apply_config(parser, again, str(path))
    assert again.cpus == 2  # given on the command line: wins
    assert (again.serve, again.service_end, again.daemon) == (3, "18:00", True)
    assert again.peer == [["10.0.0.2", 9000], "h2"]
    assert again.tcp_ports == ["9000-9001"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus = 1", "'bogus' is not an option of discoronode"),
        ("cpus = many", "cpus: invalid literal"),
        ("daemon = maybe", "daemon: expected True or False"),
        ("peer = __import__('os')", "peer: expected a list"),
    ],
)
def test_config_file_mistakes(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "node.ini"
    path.write_text(f"[DEFAULT]\n{text}\n")
    parser = build_parser()
    with pytest.raises(ValueError, match=re.escape(message)):
        apply_config(parser, parser.parse_args([]), str(path))


def test_serve_count() -> None:
    count = ServeCount(2)
    assert count.remaining() == 2
    assert not count.installed(1, "A") and not count.installed(2, "A")  # one computation
    assert not count.closed(1, "A") and not count.closed(2, "A")  # one more to serve
    assert count.remaining() == 1
    assert count.installed(1, "B")  # the second: retire every process now
    assert not count.installed(2, "B")
    assert not count.closed(1, "B")  # process 2 still has it
    assert count.gone(2)  # it exited: nothing installed any more, the node is done
    assert count.remaining() == 0
    unlimited = ServeCount(-1)
    assert not unlimited.installed(1, "A") and not unlimited.closed(1, "A")
    assert unlimited.remaining() == -1
