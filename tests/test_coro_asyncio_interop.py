"""asyncio's cancellation constructs inside ``async def`` discoro coroutines (issue 11):
``asyncio.timeout``, ``wait_for``, ``TaskGroup``, ``shield``, ``Task.cancel()``/``uncancel()``.

Each scenario runs as a plain asyncio task and as a discoro coroutine (`asyncio_compare`); what
they observe must be equal. discoro's own blocking calls and interrupts inside the same
constructs: test_coro_asyncio_blocking.py.
"""

from __future__ import annotations

import asyncio

import pytest

from asyncio_compare import LONG, SHORT, cancelling, described, run_discoro, run_plain


async def timeout_expires():
    seen = []
    try:
        async with asyncio.timeout(SHORT) as scope:
            await asyncio.sleep(LONG)
    except TimeoutError:
        seen.append("timed out")
    seen += [scope.expired(), cancelling(), await asyncio.sleep(0, "went on")]
    return seen


async def timeout_not_reached():
    async with asyncio.timeout(LONG) as scope:
        value = await asyncio.sleep(0, "in time")
    return value, scope.expired(), cancelling()


async def timeout_rescheduled():
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(None) as scope:
            scope.reschedule(loop.time() + SHORT)
            await asyncio.sleep(LONG)
    except TimeoutError:
        return "timed out", scope.expired(), cancelling()
    return "not timed out"


async def nested_timeouts_outer_fires():
    seen = []
    try:
        async with asyncio.timeout(SHORT) as outer:
            try:
                async with asyncio.timeout(LONG) as inner:
                    await asyncio.sleep(LONG)
            except TimeoutError:
                seen.append("inner timed out")
    except TimeoutError:
        seen.append("outer timed out")
    return seen, outer.expired(), inner.expired(), cancelling()


async def timeout_swallowed_inside():
    # catching the CancelledError inside the block (and going on) is the program's choice
    seen = []
    async with asyncio.timeout(SHORT) as scope:
        try:
            await asyncio.sleep(LONG)
        except asyncio.CancelledError:
            seen.append("caught the cancel")
    seen += [scope.expired(), cancelling()]
    return seen


async def wait_for_times_out_then_succeeds():
    seen = []
    try:
        await asyncio.wait_for(asyncio.sleep(LONG), SHORT)
    except TimeoutError:
        seen.append("timed out")
    seen += [await asyncio.wait_for(asyncio.sleep(0, "in time"), LONG), cancelling()]
    return seen


async def wait_for_with_zero_timeout():
    try:
        await asyncio.wait_for(asyncio.sleep(LONG), 0)
    except TimeoutError:
        return "timed out", cancelling()
    return "not timed out"


async def task_group_child_fails():
    seen = []

    async def failing():
        await asyncio.sleep(0)
        raise ValueError("child failed")

    async def sibling():
        try:
            await asyncio.sleep(LONG)
        except asyncio.CancelledError:
            seen.append("sibling cancelled")
            raise

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(failing())
            group.create_task(sibling())
            try:
                await asyncio.sleep(LONG)
            except asyncio.CancelledError:
                seen.append("body cancelled")
                raise
    except* ValueError as errors:
        seen.append([described(exc) for exc in errors.exceptions])
    seen.append(cancelling())
    return seen


async def task_group_waits_for_children():
    async def child(value):
        await asyncio.sleep(0)
        return value * 2

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(child(i)) for i in range(4)]
    return [task.result() for task in tasks], cancelling()


async def shield_under_timeout():
    loop = asyncio.get_running_loop()
    release = loop.create_future()

    async def inner_work():
        await release
        return "inner done"

    inner = asyncio.ensure_future(inner_work())
    seen = []
    try:
        async with asyncio.timeout(SHORT):
            await asyncio.shield(inner)
    except TimeoutError:
        seen.append("timed out")
    seen.append(inner.done())
    release.set_result(None)
    seen += [await inner, cancelling()]
    return seen


async def cancel_self_then_uncancel():
    task = asyncio.current_task()
    assert task is not None
    seen = [task.cancel("why"), task.cancelling()]
    try:
        await asyncio.sleep(0)
    except asyncio.CancelledError as exc:
        seen.append(described(exc))
    seen.append(task.uncancel())
    seen.append(await asyncio.sleep(0, "went on"))
    return seen


async def cancel_reaches_the_awaited_future():
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    future = loop.create_future()
    loop.call_soon(task.cancel, "stop")
    seen = []
    try:
        await future
    except asyncio.CancelledError as exc:
        seen.append(described(exc))
    seen += [future.cancelled(), task.uncancel()]
    return seen


async def cancel_after_the_future_completed():
    # the result is in but the task has not woken yet: the cancel still wins at the await
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    future = loop.create_future()
    loop.call_soon(future.set_result, "result")
    loop.call_soon(task.cancel)
    try:
        value = await future
    except asyncio.CancelledError:
        value = "cancelled"
    return value, future.result(), task.uncancel()


async def cancel_refused_by_an_awaited_task():
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    async def stubborn():
        try:
            await asyncio.sleep(LONG)
        except asyncio.CancelledError:
            return "refused"
        return "slept"

    inner = asyncio.ensure_future(stubborn())
    await asyncio.sleep(0)
    loop.call_soon(task.cancel)
    value = await inner
    return value, task.cancelling(), task.uncancel()


SCENARIOS = [
    timeout_expires,
    timeout_not_reached,
    timeout_rescheduled,
    nested_timeouts_outer_fires,
    timeout_swallowed_inside,
    wait_for_times_out_then_succeeds,
    wait_for_with_zero_timeout,
    task_group_child_fails,
    task_group_waits_for_children,
    shield_under_timeout,
    cancel_self_then_uncancel,
    cancel_reaches_the_awaited_future,
    cancel_after_the_future_completed,
    cancel_refused_by_an_awaited_task,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda scenario: scenario.__name__)
def test_discoro_coroutine_behaves_as_a_plain_asyncio_task(scenario):
    expected = run_plain(scenario)
    assert run_discoro(scenario) == expected


def test_the_scenarios_observe_what_asyncio_documents():
    # pins the plain-asyncio side, so a scenario that observes nothing cannot pass unnoticed
    assert run_plain(timeout_expires) == ["timed out", True, 0, "went on"]
    assert run_plain(cancel_reaches_the_awaited_future) == [("CancelledError", ("stop",)), True, 0]
    assert run_plain(cancel_refused_by_an_awaited_task) == ("refused", 1, 0)
    assert run_plain(task_group_child_fails) == [
        "sibling cancelled",
        "body cancelled",
        [("ValueError", ("child failed",))],
        0,
    ]
