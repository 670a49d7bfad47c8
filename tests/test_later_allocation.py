"""Node allocation rules, node info objects and the node gates of the scheduler's state
machine (later-versions 3.2, 3.3, D5, D9), without a network."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from discoro.cluster import protocol as p
from discoro.cluster.allocation import DiscoroNodeAllocate, allocations, servers_to_use
from discoro.cluster.nodeinfo import DiscoroNodeAvailInfo, DiscoroNodeInfo, avail_info
from discoro.cluster.scheduler_state import ProcFound, ProcState, SchedulerState, Send
from discoro.cluster.setup_options import SetupOptions
from discoro.cluster.status import Status, StatusMessage
from discoro.net.location import Location
from test_scheduler_state import ME, ROUTER, STATUS, Handle, sent, spec

GiB = 1 << 30


def info(
    addr: str = "10.0.0.5", cpus: int = 4, platform: str = "linux-x86_64", memory: float = GiB
) -> DiscoroNodeInfo:
    avail = DiscoroNodeAvailInfo(Location(addr, 1), 90.0, memory, 10 * GiB, 100.0)
    return DiscoroNodeInfo("box", addr, cpus, platform, avail)


# -- rules --------------------------------------------------------------------------------


def test_patterns_match_the_whole_address() -> None:
    rule = DiscoroNodeAllocate("10.0.0.1", cpus=1)
    assert rule.applies_to("10.0.0.1")
    assert not rule.applies_to("10.0.0.10")  # the original matched this prefix
    wild = DiscoroNodeAllocate("10.0.*.1", cpus=1)
    assert wild.applies_to("10.0.7.1") and wild.applies_to("10.0.77.1")
    assert not wild.applies_to("10.0.7.12")
    assert DiscoroNodeAllocate("*", cpus=1).applies_to("192.168.1.1")


def test_host_names_resolve_and_unresolvable_never_applies() -> None:
    assert DiscoroNodeAllocate("localhost", cpus=1).applies_to("127.0.0.1")
    never = DiscoroNodeAllocate("no-such-host.invalid", cpus=1)
    assert never.ip_rex is None
    assert not never.applies_to("127.0.0.1") and not never.applies_to("")
    assert servers_to_use([never], info()) == 4  # no rule applies: every server


@pytest.mark.parametrize(
    ("cpus", "node_cpus", "expected"),
    [(2, 4, 2), (4, 4, 4), (5, 4, 0), (0, 4, 0), (-1, 4, 3), (-4, 4, 0), (-9, 4, 0)],
)
def test_cpus_rule(cpus: int, node_cpus: int, expected: int) -> None:
    assert servers_to_use([DiscoroNodeAllocate("*", cpus=cpus)], info(cpus=node_cpus)) == expected


def test_the_default_cpus_excludes_the_node_and_strings_become_rules() -> None:
    rules = allocations(["10.0.0.5"])
    assert isinstance(rules[0], DiscoroNodeAllocate)
    assert servers_to_use(rules, info()) == 0  # a bare host name excludes that host
    assert servers_to_use(rules, info(addr="10.0.0.6")) == 4
    with pytest.raises(TypeError, match="DiscoroNodeAllocate or str"):
        allocations([3])
    with pytest.raises(TypeError, match="must be a list"):
        allocations("10.0.0.5")


def test_platform_memory_and_rule_order() -> None:
    windows = DiscoroNodeAllocate("*", platform="Windows", cpus=0)
    rules = [windows, DiscoroNodeAllocate("*", platform="linux.*x86_64", cpus=2)]
    assert servers_to_use(rules, info(platform="windows-10")) == 0  # excluded
    assert servers_to_use(rules, info(platform="linux-6.1-x86_64")) == 2
    assert servers_to_use(rules, info(platform="darwin")) == 4  # none applies
    big = DiscoroNodeAllocate("*", cpus=1, memory=2 * GiB)
    assert servers_to_use([big], info(memory=GiB)) == 0
    assert servers_to_use([big], info(memory=4 * GiB)) == 1


def test_allocate_is_overridable() -> None:
    class EvenOnly(DiscoroNodeAllocate):
        def allocate(self, ip_addr: str, name: str, platform: str, cpus: int, *rest: Any) -> int:
            return cpus if int(ip_addr.rsplit(".", 1)[1]) % 2 == 0 else 0

    rules = [EvenOnly("*")]
    assert servers_to_use(rules, info(addr="10.0.0.4")) == 4
    assert servers_to_use(rules, info(addr="10.0.0.5")) == 0


def test_a_failing_allocate_does_not_use_the_node() -> None:
    class Broken(DiscoroNodeAllocate):
        def allocate(self, *args: Any) -> int:
            raise ZeroDivisionError

    assert servers_to_use([Broken("*")], info()) == 0


# -- info objects ---------------------------------------------------------------------------


def test_node_info_is_the_address_string_with_attributes() -> None:
    node = info()
    assert node == "10.0.0.5" and f"{node}" == "10.0.0.5" and isinstance(node, str)
    assert (node.name, node.addr, node.cpus, node.platform) == (
        "box",
        "10.0.0.5",
        4,
        "linux-x86_64",
    )
    again = pickle.loads(pickle.dumps(node))
    assert type(again) is DiscoroNodeInfo and again == node
    assert again.avail_info == node.avail_info and again.cpus == 4
    assert StatusMessage(Status.NodeDiscovered, node) == (Status.NodeDiscovered, "10.0.0.5")


def test_avail_info_from_pulse_figures() -> None:
    where = Location("10.0.0.5", 7)
    figures = {"cpu": 25.0, "memory": 50.0, "swap": 10.0, "memory_avail": 5.0, "disk_free": 9}
    avail = avail_info(where, figures)
    assert (avail.location, avail.cpu, avail.memory, avail.disk, avail.swap) == (
        where, 75.0, 5.0, 9.0, 90.0,
    )  # fmt: skip
    empty = avail_info(where, {"cpu": None})
    assert (empty.cpu, empty.memory, empty.disk, empty.swap) == (None, None, None, None)
    assert empty.status is None and empty.info is None  # passed over by status coroutines


# -- setup options (client side) ----------------------------------------------------------


def test_setup_options_are_checked() -> None:
    def hook(coro: Any = None) -> Any:
        yield 0

    with pytest.raises(TypeError, match="node_setup must be a generator function"):
        SetupOptions.check(None, None, print, None, False, False, False)
    with pytest.raises(ValueError, match="disable_nodes needs a status_coro"):
        SetupOptions.check(None, None, hook, None, True, False, False)
    options = SetupOptions.check(STATUS, ["10.0.0.5"], hook, None, False, True, False)
    assert options.disable_servers is False  # ignored without server_setup
    assert options.with_hooks([print]) == [print, hook]
    assert SetupOptions.node_address("localhost") == "127.0.0.1"
    assert SetupOptions.node_address(Location("127.0.0.3", 5)) == "127.0.0.3"
    with pytest.raises(ValueError, match="cannot resolve"):
        SetupOptions.node_address("no-such-host.invalid")


# -- the gates in the scheduler's state machine ----------------------------------------------


FIGURES = {"cpu": 10.0, "servers": 3, "node_name": "n1", "platform": "Linux-x"}


def gated(**options: Any) -> tuple[SchedulerState, list[Handle], list[Send]]:
    state = SchedulerState(ME)
    procs = [Handle(f"s{i}", Location("127.0.0.1", i)) for i in (1, 2, 3)]
    computation = spec()
    for key, value in options.items():
        setattr(computation, key, value)
    actions = state.handle(p.Submit(computation))
    for proc in procs:
        actions += state.handle(ProcFound(proc.location, proc))
    return state, procs, actions


def setups(actions: list[Send], procs: list[Handle]) -> list[Handle]:
    return [proc for proc in procs if any(isinstance(m, p.Setup) for m in sent(actions, proc))]


def pulse(state: SchedulerState, proc: Handle) -> list[Send]:
    return state.handle(p.ServerPulse(proc.location, None, 0, dict(FIGURES)))


def test_allocation_waits_for_figures_then_asks_the_client() -> None:
    state, procs, actions = gated(allocate=True)
    assert setups(actions, procs) == [] and sent(actions, ROUTER)[-1] == p.Scheduled("c1")
    actions = pulse(state, procs[0])
    (query,) = sent(actions, ROUTER)
    assert isinstance(query, p.AllocateQuery) and query.reply_to is ME
    assert (query.info, query.info.cpus, query.info.name) == ("127.0.0.1", 3, "n1")
    assert sent(actions, STATUS) == []  # NodeDiscovered once the node is allocated
    actions = state.handle(p.Allocation("c1", "127.0.0.1", 2))
    assert next(m.status for m in sent(actions, STATUS)) == Status.NodeDiscovered
    assert setups(actions, procs) == procs[:2]  # a positive count is honoured
    assert state.procs[procs[2].location].state is ProcState.DISCOVERED


def test_allocation_zero_ignores_the_node_without_status() -> None:
    state, procs, _ = gated(allocate=True)
    pulse(state, procs[0])
    actions = state.handle(p.Allocation("c1", "127.0.0.1", 0))
    assert actions == []
    assert setups(pulse(state, procs[1]), procs) == []


def test_disabled_node_waits_for_enable_and_node_setup_runs_once() -> None:
    state, procs, actions = gated(disable_nodes=True, node_setup="prepare")
    assert setups(actions, procs) == []
    pulse(state, procs[1])  # figures: NodeDiscovered, then the node waits
    assert setups(state.handle(p.EnableNode("other", "127.0.0.1", b"")), procs) == []
    actions = state.handle(p.EnableNode("c1", "127.0.0.1", b"ARGS"))
    (first,) = setups(actions, procs)
    assert first is procs[0]  # the node's own location runs node_setup
    (setup,) = sent(actions, first)
    assert setup.node_setup_args == b"ARGS" and setup.node_globals is None
    assert state.handle(p.EnableNode("c1", "127.0.0.1", b"again")) == []  # not waiting now
    actions = state.handle(p.NodeSetupDone(first.location, "c1", b"GLOBALS"))
    assert setups(actions, procs) == procs[1:]
    for proc in procs[1:]:
        (setup,) = sent(actions, proc)
        assert setup.node_setup_args is None and setup.node_globals == b"GLOBALS"


def test_failed_node_setup_keeps_the_node_out_and_tells_the_client() -> None:
    state, procs, actions = gated(node_setup="prepare")
    assert setups(actions, procs) == procs[:1]
    actions = state.handle(p.NodeSetupDone(procs[0].location, "c1", b"", "boom"))
    (output,) = sent(actions, ROUTER)
    assert isinstance(output, p.Output) and "node_setup failed: boom" in output.text
    assert setups(actions, procs) == []
    assert all(proc.state is not ProcState.INITIALIZED for proc in state.procs.values())


def test_node_setup_moves_on_when_its_process_is_lost() -> None:
    from discoro.cluster.scheduler_state import PeerLost

    state, procs, _ = gated(node_setup="prepare")
    actions = state.handle(PeerLost(procs[0].location))
    assert setups(actions, procs) == procs[1:2]


def done(state: SchedulerState, proc: Handle, error: str = "") -> p.SetupDone:
    """``proc``'s answer to its Setup, from the incarnation the scheduler gave it."""
    incarnation = state.procs[proc.location].incarnation
    return p.SetupDone(proc.location, "c1", error, incarnation)


def test_enable_server_is_forwarded_only_while_it_initializes() -> None:
    state, procs, _ = gated(server_setup="ready", disable_servers=True)
    enable = p.EnableServer("c1", procs[0].location, b"")
    assert sent(state.handle(enable), procs[0]) == [enable]
    state.handle(done(state, procs[0]))
    assert sent(state.handle(enable), procs[0]) == []


def test_avail_reports_once_per_pulse_interval_per_node() -> None:
    state, procs, _ = gated()
    for proc in procs:
        state.handle(done(state, proc))
    reports = []
    for proc in procs:
        reports += [
            m for m in sent(pulse(state, proc), STATUS) if isinstance(m, DiscoroNodeAvailInfo)
        ]
    assert len(reports) == 1 and reports[0].cpu == 90.0
    assert reports[0].location == procs[0].location


def test_peers_communicate_introduces_servers() -> None:
    state, procs, _ = gated(peers_communicate=True)
    assert sent(state.handle(done(state, procs[0])), procs[0]) == []
    actions = state.handle(done(state, procs[1]))
    assert sent(actions, procs[1]) == [p.Peers("c1", [procs[0].location])]


def test_a_server_still_closing_an_earlier_computation_is_tried_again() -> None:
    from discoro.cluster.scheduler_state import Tick

    state, procs, _ = gated()
    refused = done(state, procs[0], "busy with computation old")
    assert state.handle(refused) == []  # no status: it is tried again at the next tick
    assert state.procs[procs[0].location].state is ProcState.DISCOVERED
    actions = state.handle(Tick(0.0))
    assert setups(actions, procs) == procs[:1]
    assert [m for m in sent(actions, STATUS) if isinstance(m, StatusMessage)] == []
