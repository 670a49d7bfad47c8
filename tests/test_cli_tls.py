"""TLS from the command line: ``discoronode``, ``discoro`` and ``discoro status`` with
``--certfile``/``--keyfile``/``--cafile`` form a cluster; with ``--cafile`` a peer whose
certificate another CA signed is refused. Certificates as in test_tls.py (openssl)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import pytest

from discoro.cluster.local import local_cluster
from procs import SRC, PeerProcess
from test_tls import make_ca, make_node

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.timeout(90)

SCHEDULER = "import sys\nfrom discoro.cli.scheduler import main\nsys.exit(main(sys.argv[1:]))\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    folder = tmp_path_factory.mktemp("cli-pki")
    ca, rogue_ca = make_ca(folder, "cli-ca"), make_ca(folder, "cli-rogue-ca")
    files = {"ca": str(ca[0])}
    for name, signer in (("node", ca), ("scheduler", ca), ("client", ca), ("rogue", rogue_ca)):
        cert, key = make_node(folder, name, signer)
        files[name], files[f"{name}_key"] = str(cert), str(key)
    return files


def tls_args(pki: dict[str, str], name: str) -> tuple[str, ...]:
    return ("--certfile", pki[name], "--keyfile", pki[f"{name}_key"], "--cafile", pki["ca"])


def status(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCHEDULER, "status", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**__import__("os").environ, "PYTHONPATH": SRC},
        check=False,
    )


def test_a_cluster_over_verified_tls_and_a_rogue_certificate_refused(
    pki: dict[str, str], udp_port: int, cluster_secret: str, tmp_path: Path
) -> None:
    net = ("-i", "127.0.0.1", "-u", str(udp_port))
    with (
        local_cluster(procs=1, udp_port=udp_port, args=tls_args(pki, "node")),
        PeerProcess(
            SCHEDULER, *net, "--dest_path", str(tmp_path), "--zombie_period", "0",
            *tls_args(pki, "scheduler"),
        ) as scheduler,
    ):  # fmt: skip
        match = scheduler.expect(r"^discoro: scheduler ready at (127\.0\.0\.1:\d+)$", 20)
        where = match[1]
        deadline = time.monotonic() + 20
        snapshot: dict[str, Any] = {}
        while time.monotonic() < deadline:
            result = status("--scheduler", where, *net, "--json", *tls_args(pki, "client"))
            assert result.returncode == 0, result.stderr
            snapshot = json.loads(result.stdout)
            if snapshot["totals"]["procs"] == 1:
                break
            time.sleep(0.2)
        assert snapshot["totals"]["procs"] == 1, snapshot  # the node's process, over TLS

        rogue = ("--certfile", pki["rogue"], "--keyfile", pki["rogue_key"])
        refused = status(
            "--scheduler", where, *net, "--timeout", "3", *rogue, "--cafile", pki["ca"]
        )
        assert refused.returncode == 1, (refused.stdout, refused.stderr)
        assert f"no scheduler at {where} answered" in refused.stderr
        plain = status("--scheduler", where, *net, "--timeout", "3")
        assert plain.returncode == 1, (plain.stdout, plain.stderr)
