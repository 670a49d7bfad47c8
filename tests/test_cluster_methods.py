"""Every `Computation` method against a real node with two server processes and a private
scheduler in a separate client program."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

import discoro
from cluster_programs import run_client

if TYPE_CHECKING:
    from collections.abc import Iterator

    from discoro.cluster.local import LocalCluster

METHODS = """
def job(n, client, coro=None):
    yield coro.sleep(0.01)
    client.send((n, str(coro.location)))


def not_a_generator(n):
    return n


def client(coro=None):
    comp = Computation([job])
    before = yield comp.run(job, 1, coro)
    out("BEFORE", before, (yield comp.run_procs(job, 1, coro)), (yield comp.nodes()),
        comp.last_error)
    comp = yield from start([job], coro)
    nodes = yield comp.nodes()
    procs = yield comp.procs()
    out("NODES", nodes)
    out("PROCS", sorted(str(p) for p in procs))
    out("ALIAS servers", sorted(str(p) for p in (yield comp.servers())))

    def finish(rc):
        # what the remote coroutine sent back
        assert isinstance(rc, Coro), rc
        return (yield coro.receive(timeout=10))

    def finish_all(rcs):
        values = []
        for rc in rcs:
            values.append((yield from finish(rc)))
        return values

    rc = yield comp.run(job, 1, coro)
    out("RUN", type(rc).__name__, (yield from finish(rc)))
    rc = yield comp.run_at("127.0.0.1", job, 2, coro)
    out("RUN_AT_NODE", type(rc).__name__, (yield from finish(rc)))
    where = procs[1]
    rc = yield comp.run_at(where, job, 3, coro)
    out("RUN_AT_PROC", type(rc).__name__, str(rc.location) == str(where), (yield from finish(rc)))
    for label, target in (("STR", "127.0.0.1"), ("NODE", "node"), ("LOCATION", procs[0]),
                          ("PROC", "proc"), ("SERVER", "server")):
        rcs = yield comp.run_each(target, job, 4, coro)
        values = yield from finish_all(rcs)
        out("RUN_EACH", label, len(rcs), sorted(set(v[1] for v in values)) == sorted(
            str(rc.location) for rc in rcs))
    for label, method in (("RUN_NODES", comp.run_nodes), ("RUN_PROCS", comp.run_procs),
                          ("RUN_SERVERS", comp.run_servers)):
        rcs = yield method(job, 5, coro)
        values = yield from finish_all(rcs)
        out(label, len(rcs), sorted(v[1] for v in values))
    for label, method in (("RUN_NODE_PROCS", comp.run_node_procs),
                          ("RUN_NODE_SERVERS", comp.run_node_servers)):
        rcs = yield method("127.0.0.1", job, 6, coro)
        values = yield from finish_all(rcs)
        out(label, len(rcs), sorted(v[1] for v in values))
    out("KWARGS", (yield from finish((yield comp.run(job, n=7, client=coro)))))
    bad = yield comp.run(job)
    out("BAD_ARGS", type(bad).__name__, bad[0].__name__, bad[1], "missing" in bad[2])
    bad = yield comp.run(not_a_generator, 1)
    out("NOT_GENERATOR", type(bad).__name__, bad[0].__name__, bad[1], repr(bad[2]))
    out("CLOSE", (yield comp.close()))
    bad = yield comp.run(job, 1, coro)
    out("AFTER_CLOSE", bad, repr(comp.last_error), (yield comp.procs()))
    return "ok"
"""


@pytest.fixture(scope="module")
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=2, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


def test_every_method(cluster: LocalCluster, udp_port: int) -> None:
    procs = sorted(str(loc) for loc in cluster.procs.values())
    with run_client(METHODS, udp_port) as client:
        client.expect(r"^BEFORE None \[\] \[\] the computation is not scheduled$")
        client.expect(r"^SCHEDULE 0$", timeout=20)
        assert client.expect(r"^NODES (.*)$")[1] == "['127.0.0.1']"
        assert client.expect(r"^PROCS (.*)$")[1] == repr(procs)
        assert client.expect(r"^ALIAS servers (.*)$")[1] == repr(procs)
        for label, n in (("RUN", 1), ("RUN_AT_NODE", 2)):
            match = client.expect(rf"^{label} (\S+) \({n}, '(\S+)'\)$")
            assert match[1] == "Coro" and match[2] in procs
        client.expect(r"^RUN_AT_PROC Coro True \(3, '")
        # a string: one per node; a Location, 'proc', 'server': one per process
        client.expect(r"^RUN_EACH STR 1 True$")
        client.expect(r"^RUN_EACH NODE 1 True$")
        client.expect(r"^RUN_EACH LOCATION 2 True$")
        client.expect(r"^RUN_EACH PROC 2 True$")
        client.expect(r"^RUN_EACH SERVER 2 True$")
        assert client.expect(r"^RUN_NODES 1 \['(\S+)'\]$")[1] in procs
        for label in ("RUN_PROCS", "RUN_SERVERS", "RUN_NODE_PROCS", "RUN_NODE_SERVERS"):
            assert client.expect(rf"^{label} 2 (.*)$")[1] == repr(procs)
        client.expect(r"^KWARGS \(7, ")
        client.expect(r"^BAD_ARGS tuple TypeError job True$")
        client.expect(r"^NOT_GENERATOR tuple TypeError not_a_generator '.*generator")
        client.expect(r"^CLOSE 0$")
        client.expect(r"^AFTER_CLOSE None 'the computation is closed' \[\]$")
        client.expect(r"^DONE ok$")
        assert client.wait(10) == 0
