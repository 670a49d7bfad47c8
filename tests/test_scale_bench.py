"""bench/scale_bench.py still runs: 2 namespace hosts, a shared scheduler, 20 jobs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from netns import netns_unavailable

pytestmark = pytest.mark.netns

BENCH = Path(__file__).resolve().parents[1] / "bench" / "scale_bench.py"


@pytest.mark.timeout(180)
def test_scale_bench_smoke(cluster_secret: str) -> None:
    why_not = netns_unavailable()
    if why_not is not None:
        pytest.skip(why_not)
    args = ["--hosts", "2", "--jobs", "20", "--submitters", "4", "--repeat", "1", "--idle", "2"]
    result = subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True, text=True, timeout=170, env=dict(os.environ),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split("  ")[0]: line for line in result.stdout.splitlines()}
    for metric in ("all initialized s", "jobs/s", "sched CPU us/job", "pulse round KiB"):
        assert metric in rows, result.stdout
    spread = [line for line in result.stdout.splitlines() if line.startswith("jobs/proc max")]
    assert spread and float(spread[0].split()[2]) >= 1, result.stdout  # jobs reached servers
