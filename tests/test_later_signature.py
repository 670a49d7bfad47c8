"""The `Computation` signature of later-versions D2 and `DiscoroNodeInfo` of D5, without a
network: the seed's positional order with the later parameters as keywords, a clear
`TypeError` for a later program's positional ``pulse_interval``/``node_allocations``, and a
node info that is its address string and carries the later attributes."""

from __future__ import annotations

import pickle

import pytest

import discoro
from discoro import Computation, DiscoroNodeInfo, MsgTimeout, RunError, Scheduler
from discoro.cluster import protocol as p
from discoro.cluster.results import _settle, result_args


def job(n: int, coro: object = None) -> object:
    yield n


def test_seed_positional_order_and_public_attributes() -> None:
    computation = Computation([job], None, 5, 2, 100)
    assert computation.status_coro is None
    assert computation.timeout == 5 and computation.pulse_interval == 2
    assert computation.zombie_period == 100
    default = Computation(job)
    assert default.timeout == MsgTimeout and default.pulse_interval == discoro.MinPulseInterval


def test_later_parameters_are_keywords_and_kept() -> None:
    def setup(coro: object = None) -> object:
        yield 0

    def status(coro: object = None) -> object:
        yield 0

    computation = Computation(
        [job],
        status_coro=discoro.Coro(status),  # disable_nodes/_servers need one (later-versions 1)
        pulse_interval=discoro.MinPulseInterval,
        timeout=5,  # discoro_client2 passes it (4.5.6 itself refused it)
        node_allocations=["127.0.0.1"],
        node_setup=setup,
        server_setup=setup,
        disable_nodes=True,
        disable_servers=True,
        peers_communicate=True,
    )
    assert computation.timeout == 5
    assert [rule.node for rule in computation.node_allocations] == ["127.0.0.1"]  # as rules
    assert computation.node_setup is setup and computation.server_setup is setup
    assert computation.disable_nodes and computation.disable_servers
    assert computation.peers_communicate
    assert Computation([job]).node_allocations == []


@pytest.mark.parametrize(
    ("args", "keyword"),
    [
        ((10,), "pulse_interval=10"),
        ((2.5,), "pulse_interval=2.5"),
        ((["127.0.0.*"],), "node_allocations=[...]"),
        ((None, 10, ["127.0.0.1"]), "node_allocations=[...]"),
    ],
)
def test_a_later_positional_argument_names_the_keyword(
    args: tuple[object, ...], keyword: str
) -> None:
    with pytest.raises(TypeError, match=keyword.replace("[", r"\[").replace(".", r"\.")):
        Computation([job], *args)


def test_later_parameters_cannot_be_positional() -> None:
    with pytest.raises(TypeError):
        Computation([job], None, 5, 2, 100, True)  # type: ignore[misc]


def test_status_codes_of_both_eras() -> None:
    assert Scheduler.ComputationScheduled == 23
    assert Scheduler.ServerClosed == Scheduler.ProcClosed == 13
    assert Scheduler.ServerDiscovered == Scheduler.ProcDiscovered == 11


def test_node_info_is_the_address_string_with_attributes() -> None:
    info = DiscoroNodeInfo("box", "127.0.0.1", 4, "linux-x86_64")
    assert info == "127.0.0.1" and isinstance(info, str)
    assert str(info) == "127.0.0.1" and f"{info}" == "127.0.0.1"
    assert {info: 1}["127.0.0.1"] == 1
    assert (info.name, info.addr, info.cpus, info.platform) == (
        "box",
        "127.0.0.1",
        4,
        "linux-x86_64",
    )
    assert info.avail_info is None
    copy = pickle.loads(pickle.dumps(info))
    assert isinstance(copy, DiscoroNodeInfo) and copy == info
    assert (copy.name, copy.cpus, copy.platform) == ("box", 4, "linux-x86_64")


def test_run_results_argument_quirks() -> None:
    assert result_args((1, 2)) == (1, 2)
    assert result_args([1, 2]) == (1, 2)
    assert result_args("ab") == ("a", "b")  # 4.5.6: a str is an iterable of characters
    assert result_args(5) == (5,)
    assert result_args(None) == (None,)


def test_run_error_carries_the_remote_exception_and_traceback() -> None:
    cause = ValueError("bad")
    error = RunError("ValueError", "bad", "Traceback ...\nValueError: bad\n", cause)
    assert isinstance(error, discoro.RemoteError) and isinstance(error, discoro.DiscoroError)
    assert error.exception is cause and error.type_name == "ValueError"
    assert str(error).startswith("ValueError: bad\nTraceback")


def test_what_a_lost_or_failed_job_gives_each_style() -> None:
    lost_error, lost_value = _settle(p.JobLost(1, "process 127.0.0.1:1 was lost"))
    assert lost_value is None
    assert lost_error is not None and lost_error.type_name == "ProcessLost"
    closed_error, closed_value = _settle(None)  # the computation ended first
    assert closed_value is None and closed_error is not None
    raised = KeyError("k")
    data = pickle.dumps(raised)
    error, value = _settle(p.JobValue(2, data, True, "Traceback ...\nKeyError: 'k'\n"))
    assert isinstance(value, KeyError) and value.remote_traceback.endswith("KeyError: 'k'\n")  # type: ignore[attr-defined]
    assert error is not None and error.type_name == "KeyError"
    assert isinstance(error.exception, KeyError) and isinstance(error.__cause__, KeyError)
    assert _settle(p.JobValue(3, pickle.dumps([1, 2]))) == (None, [1, 2])
