"""A remote coroutine that fails is shown at the client once, with the user's own file
names, line numbers and source lines, unless the program handles its `MonitorException`
(issue 11). The client program runs from a file that it overwrites once its computation is
made, so the source lines can only come from what the client shipped."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

import discoro
from cluster_programs import PRELUDE
from procs import PeerProcess

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from discoro.cluster.local import LocalCluster

RUN_FILE = """
import runpy, sys
path = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(path, run_name="__main__")
"""

BODY = """
def divide(n):
    return n / 0  # the failing line


def job(n, client, coro=None):
    if client is not None:
        yield coro.receive()  # until the client monitors it
    yield coro.sleep(0)
    return divide(n)


def forget_my_source():
    with open(__file__, "w") as f:
        f.write("# overwritten\\n" * 300)


def client(coro=None):
    status = Coro(status_proc) if MODE == "status" else None
    comp = Computation([job], status_coro=status)
    forget_my_source()
    out("SCHEDULE", (yield comp.schedule()))
    if MODE == "monitor":
        rc = yield comp.run(job, 1, coro)
        out("MONITORED", (yield coro.monitor(rc)))
        rc.send("go")
        msg = yield coro.receive(timeout=20)
        out("TB", msg.remote_traceback.replace("\\n", " | "))
    else:
        rc = yield comp.run(job, 1, None)
        out("RAN", type(rc).__name__)
        if MODE == "plain":  # open until the test saw the failure
            import threading
            threading.Thread(target=lambda: (sys.stdin.readline(), coro.send("close")),
                             daemon=True).start()
            yield coro.receive(timeout=30)
        else:
            yield coro.sleep(2)  # slack for a wrong "failed" line to show up
    yield comp.close()
    return "ok"
"""


@pytest.fixture(scope="module")
def cluster(cluster_secret: str, udp_port: int) -> Iterator[LocalCluster]:
    with discoro.local_cluster(procs=1, udp_port=udp_port, secret=cluster_secret) as node:
        yield node


def start_client(tmp_path: Path, udp_port: int, mode: str) -> tuple[PeerProcess, str, int]:
    program = PRELUDE + f"\nMODE = {mode!r}\n" + BODY + "\nmain(client)\n"
    path = tmp_path / "user_program.py"
    path.write_text(program)
    line = program.splitlines().index("    return n / 0  # the failing line") + 1
    return PeerProcess(RUN_FILE, str(path), str(udp_port), "1"), str(path), line


def test_an_unhandled_remote_failure_is_shown_once_with_the_users_file_and_line(
    cluster: LocalCluster, udp_port: int, tmp_path: Path
) -> None:
    client, path, line = start_client(tmp_path, udp_port, "plain")
    with client:
        client.expect(r"^SCHEDULE 0$", timeout=20)
        client.expect(r"remote coroutine job/\d+@\S+ failed:$", timeout=20)
        client.expect(rf'^  File "{re.escape(path)}", line {line}, in divide$')
        client.expect(r"^    return n / 0  # the failing line$")
        client.expect(r"^ZeroDivisionError: division by zero$")
        client.write("close")
        client.expect(r"^DONE ok$")
        assert client.wait(10) == 0
    output = "\n".join(client.output)
    assert "RAN Coro" in client.output
    assert output.count("ZeroDivisionError") == 1, output
    assert "<dynamic-code>" not in output and "driver.py" not in output, output


def test_a_status_coroutine_handles_the_failure_so_nothing_is_printed(
    cluster: LocalCluster, udp_port: int, tmp_path: Path
) -> None:
    client, path, line = start_client(tmp_path, udp_port, "status")
    with client:
        # the status coroutine gets the MonitorException, with the traceback attached
        match = client.expect(r"^MONITOR job/\S+ ZeroDivisionError .* TB (.*)$", timeout=30)
        assert f'File "{path}", line {line}, in divide' in match[1]
        assert "return n / 0  # the failing line" in match[1]
        client.expect(r"^DONE ok$")
        assert client.wait(10) == 0
    assert not [text for text in client.output if "failed:" in text], client.output


def test_a_program_that_monitors_the_coroutine_handles_the_failure(
    cluster: LocalCluster, udp_port: int, tmp_path: Path
) -> None:
    client, path, line = start_client(tmp_path, udp_port, "monitor")
    with client:
        client.expect(r"^MONITORED 0$", timeout=30)
        tb = client.expect(r"^TB (.*)$", timeout=20)[1]
        assert f'File "{path}", line {line}, in divide' in tb
        assert "return n / 0  # the failing line" in tb
        client.expect(r"^DONE ok$")
        assert client.wait(10) == 0
    assert not [text for text in client.output if "failed:" in text], client.output


def test_shipped_code_keeps_its_file_name_and_registered_source_is_removed_at_close() -> None:
    import linecache
    import pickle

    from discoro.cluster import shipping, sources

    def local_function() -> int:
        return 1

    copy = pickle.loads(shipping.pickle_function(local_function))
    assert copy.__code__.co_filename == __file__  # not cloudpickle's "<dynamic-code>"
    assert copy() == 1
    collected = sources.collect([local_function])
    assert list(collected) == [__file__] and "def local_function" in collected[__file__]
    name = "/nowhere/shipped_by_a_client.py"
    registered = sources.register({name: "x = 1\nraise ValueError"})
    linecache.checkcache(name)  # the entry has no file behind it: it must survive this
    assert linecache.getline(name, 2) == "raise ValueError\n"
    sources.unregister(registered)
    assert linecache.getline(name, 2) == ""
