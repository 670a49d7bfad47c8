"""Every program in examples/ runs to completion on loopback and prints its result line.

Each example starts its own local cluster (free discovery port, random secret), so they run
as plain subprocesses here, in whatever network namespace the test run uses.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from procs import SRC

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

FINAL_LINES = {
    "demo.py": r"^sum of the squares of 1\.\.100 computed remotely: 338350 \(expected 338350\)$",
    "monitor_status.py": r"^monitor_status: 9 jobs done, 1 failed as expected$",
    "client_messages.py": r"^client_messages: squares sum to 288, 3 messages handled$",
    "client_files.py": r"^client_files: 2 processes agree: 'the' x4, 'fox' x2$",
    "shared_scheduler.py": r"^shared_scheduler: both clients done$",
}


def test_every_example_has_an_expected_final_line() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(FINAL_LINES)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", sorted(FINAL_LINES))
def test_example_runs_to_completion(name: str, tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("DISCORO_SECRET", None)  # each example makes its own secret
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # the result line (status lines from daemon coroutines may still follow it)
    assert re.search(FINAL_LINES[name], result.stdout, re.MULTILINE), output
    assert "Traceback" not in output, output
