"""A node cut off for 60 s is used again within 10 s of the network healing (issue 10).

The hosts and the client are those of `test_partition_rejoin` (two nodes with one server
process each, a client with a private scheduler on a third host). Host 1's cable is pulled
for 60 s while a coroutine sleeps there: long enough for every backoff on both sides to
reach its cap (the server's announcements, the scheduler's re-probes). The sleeper is
reported lost once; after the cable goes back in, the process is initialized again and
runs a job within 10 s.
"""

from __future__ import annotations

import re
import tempfile
import time
from typing import TYPE_CHECKING

import pytest

from test_partition_rejoin import CLIENT_PROGRAM, UDP_PORT, lan, lines, start_node

if TYPE_CHECKING:
    from netns import Topology

__all__ = ["lan"]  # the fixture

pytestmark = pytest.mark.netns

CUT_SECONDS = 60.0
HEALED_WITHIN = 10.0


@pytest.mark.timeout(180)
def test_node_cut_off_for_a_minute_is_used_again_within_ten_seconds(lan: Topology) -> None:
    with tempfile.TemporaryDirectory(prefix="discoro-netns-") as dest:
        start_node(lan, 0, dest)
        start_node(lan, 1, dest)
        client = lan.spawn(2, CLIENT_PROGRAM, lan.addresses[2], str(UDP_PORT))
        client.expect(r"^SCHEDULED 0$", timeout=15)
        client.expect(r"^PROCS 2$", timeout=25)
        cut = lan.addresses[1]
        here, _ = client.expect_all(
            rf"^SLEEPING ({re.escape(cut)}:\d+) (\S+)$",
            rf"^SLEEPING {re.escape(lan.addresses[0])}:\d+ \S+$",
            timeout=15,
        )  # in either order
        where, sleeper = here.groups()

        lan.unplug(1)
        cut_at = time.monotonic()
        client.expect_all(
            rf"^STATUS ProcDisconnected {re.escape(where)}$",
            rf"^MONITOR {re.escape(sleeper)} {re.escape(where)} ProcessLost$",
            timeout=15,
        )
        time.sleep(max(0.0, CUT_SECONDS - (time.monotonic() - cut_at)))  # the cut's length
        lan.plug(1)
        healed_at = time.monotonic()
        client.expect(rf"^STATUS ProcInitialized {re.escape(where)}$", timeout=HEALED_WITHIN)
        # every process initialized again runs a job (the client program does so itself)
        client.expect(rf"^RESULT {re.escape(cut)} {re.escape(where)}$", timeout=HEALED_WITHIN)
        took = time.monotonic() - healed_at
        print(f"used again {took:.1f} s after the network healed")
        assert took <= HEALED_WITHIN + 1.0
        reports = [line.split()[-1] for line in lines(client, rf"^MONITOR {re.escape(sleeper)} ")]
        assert reports == ["ProcessLost"], client.output
        for line in client.output:
            assert "Traceback" not in line, client.output
