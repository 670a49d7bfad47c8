"""``discoro ssh`` failing: fast, with one line that names the host, nothing left behind.

Real sshd on hosts 0 and 1 (`sshhosts.SSHHosts`), the launcher on host 2. An address where
no host answers, a port where no sshd listens, a key the servers do not accept, a host key
that is not pinned, a remote interpreter that does not exist and a node that refuses its
options must each end the launcher with exit status 1 and one ``discoro ssh: error: HOST:
...`` line, and leave no discoro process on any host (in the last case the scheduler had
already started).
"""

from __future__ import annotations

import re
import sys
import time
from typing import TYPE_CHECKING

import pytest

from netns import Topology, netns_unavailable
from sshhosts import SSHHosts, keygen, sshd_unavailable, wait_until_gone

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]

UDP_PORT = 51372
LAUNCHER = 2
LAUNCHER_PROGRAM = """
import sys
from discoro.cli.scheduler import main
sys.exit(main(["ssh", *sys.argv[1:]]))
"""


@pytest.fixture(scope="module")
def lan(
    cluster_secret: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Topology, SSHHosts]]:
    why_not = netns_unavailable() or sshd_unavailable()
    if why_not is not None:
        pytest.skip(why_not)
    with Topology(3) as topology:
        hosts = SSHHosts(topology, [0, 1], tmp_path_factory.mktemp("sshd")).start()
        try:
            yield topology, hosts
        finally:
            hosts.stop()


def fails(
    lan: tuple[Topology, SSHHosts], args: list[str], host: str, reason: str
) -> tuple[str, float]:
    """Run the launcher with ``args``; check it fails naming ``host`` with ``reason`` (both
    regexes) and leaves nothing running. Its error line and how long it took."""
    topology, hosts = lan
    started = time.monotonic()
    launcher = topology.spawn(
        LAUNCHER, LAUNCHER_PROGRAM, "--python", sys.executable, "-c", "1",
        "--node-options", f"-u {UDP_PORT}", "--scheduler-options", f"-u {UDP_PORT}", *args,
    )  # fmt: skip
    status = launcher.wait(60)
    took = time.monotonic() - started
    launcher.stop()
    errors = [line for line in launcher.output if line.startswith("discoro ssh: error:")]
    assert status == 1, launcher.output
    assert len(errors) == 1, launcher.output
    assert re.match(rf"^discoro ssh: error: ({host}): {reason}", errors[0]), errors
    assert not [line for line in launcher.output if line.startswith("Traceback")], launcher.output
    left = wait_until_gone(hosts.namespaces, 10)
    assert not left, f"left running after the failure: {left}"
    return errors[0], took


def test_an_unreachable_host_fails_fast(lan: tuple[Topology, SSHHosts]) -> None:
    topology, hosts = lan
    nobody = topology.addresses[0].rsplit(".", 1)[0] + ".200"  # on the LAN, no host there
    line, took = fails(
        lan, [*hosts.launcher_args(), "--connect-timeout", "5", hosts.addresses[0], nobody],
        re.escape(nobody), "(cannot connect|no SSH connection within)",
    )  # fmt: skip
    print(f"{line} (after {took:.1f} s)")


def test_a_port_without_sshd_fails_fast(lan: tuple[Topology, SSHHosts]) -> None:
    _, hosts = lan
    either = "|".join(re.escape(address) for address in hosts.addresses)
    fails(lan, [*hosts.launcher_args(), "--ssh-port", "2222", *hosts.addresses], either,
          "cannot connect to SSH port 2222: Connection refused")  # fmt: skip


def test_a_refused_key_fails_clearly(
    lan: tuple[Topology, SSHHosts], tmp_path_factory: pytest.TempPathFactory
) -> None:
    _, hosts = lan
    stranger = tmp_path_factory.mktemp("stranger") / "key"
    keygen(stranger)
    args = ["--ssh-user", "root", "--ssh-key", str(stranger), "--known-hosts"]
    either = "|".join(re.escape(address) for address in hosts.addresses)
    line, took = fails(lan, [*args, str(hosts.known_hosts), *hosts.addresses], either,
          "the SSH server refused the key")  # fmt: skip
    print(f"{line} (after {took:.1f} s)")


def test_a_host_key_that_is_not_pinned_fails(
    lan: tuple[Topology, SSHHosts], tmp_path_factory: pytest.TempPathFactory
) -> None:
    _, hosts = lan
    pins = tmp_path_factory.mktemp("pins") / "known_hosts"
    pins.write_text(hosts.known_hosts.read_text().splitlines()[0] + "\n")  # host 0 only
    args = ["--ssh-user", "root", "--ssh-key", str(hosts.user_key), "--known-hosts", str(pins)]
    fails(lan, [*args, *hosts.addresses], re.escape(hosts.addresses[1]), "host key not verifiable")


def test_a_missing_remote_interpreter_fails_clearly(lan: tuple[Topology, SSHHosts]) -> None:
    _, hosts = lan
    line, _ = fails(
        lan, [*hosts.launcher_args(), "--python", "/nonexistent/python3", *hosts.addresses],
        re.escape(hosts.addresses[0]), r"the scheduler exited \(status 127\)",
    )  # fmt: skip
    assert "/nonexistent/python3" in line


def test_a_node_that_cannot_start_stops_the_scheduler_too(
    lan: tuple[Topology, SSHHosts],
) -> None:
    _, hosts = lan
    args = [*hosts.launcher_args(), "--node-options", "--dest_path /dev/null/folder"]
    either = "|".join(re.escape(address) for address in hosts.addresses)
    line, _ = fails(lan, [*args, *hosts.addresses], either, "the node exited")
    assert "--dest_path" in line
