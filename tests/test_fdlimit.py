"""`raise_fd_limit`: a scheduler lifts its soft open-file limit so it can hold a link per
server process; never lowers it."""

from __future__ import annotations

import resource
import subprocess
import sys
import textwrap

import pytest

from discoro.net.fdlimit import raise_fd_limit

PROGRAM = textwrap.dedent("""
    import resource, sys
    from discoro.net.fdlimit import raise_fd_limit
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))
    print(raise_fd_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    print(raise_fd_limit(100), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    print(raise_fd_limit(10**6), resource.getrlimit(resource.RLIMIT_NOFILE)[0])
""")


@pytest.mark.timeout(30)
def test_soft_limit_raised_towards_the_hard_one_never_lowered() -> None:
    # in a child: the limits of the test process stay as they are
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=20, check=True
    ).stdout.split("\n")
    assert out[0] == "4096 4096"  # capped at the hard limit
    assert out[1] == "4096 4096"  # a smaller target never lowers it
    assert out[2] == "4096 4096"


@pytest.mark.timeout(30)
def test_current_process_keeps_a_limit_at_least_as_high() -> None:
    before = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    raise_fd_limit()
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= before
