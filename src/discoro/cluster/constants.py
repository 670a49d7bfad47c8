"""Timing constants of discoro (reference 3.1, DESIGN decision 7).

Silence for 5 x ``pulse_interval`` marks the other end faulty. Our `MinPulseInterval` is 1 s
(the original's was 10 s), so a dead process is noticed in seconds.
"""

MsgTimeout = 10
MinPulseInterval = 1
MaxPulseInterval = 100
#: pulses a peer may miss before it is declared faulty
MISSED_PULSES = 5
SCHEDULER_NAME = "discoro_scheduler"
SERVER_NAME = "discoro_proc"
#: seconds a terminate of a coroutine whose server's loop is stuck in user code waits before
#: that server process ends itself (its node starts a new one): `discoro.net.liveness`
TERMINATE_GRACE = 3.0
