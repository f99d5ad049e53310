"""A crashed agent or timer is counted, fails health and still reaches faust (re-raised)."""

from __future__ import annotations

import asyncio

import pytest

from netpilot.obs.metrics import sample_value
from streams.metrics import StreamsMetrics
from streams.service import StreamsService
from streams.settings import StreamsSettings
from streams.supervision import TaskHealth


def test_a_crash_is_counted_kept_and_re_raised() -> None:
    metrics = StreamsMetrics.create()
    tasks = TaskHealth(metrics.task_crashes)
    calls: list[int] = []

    @tasks.guard("aggregate-flows")
    async def agent(stream: list[int]) -> None:
        for x in stream:
            calls.append(x)
            if x == 2:
                raise OverflowError("Python int too large to convert to C long")

    assert tasks.health() == (True, "ok")
    with pytest.raises(OverflowError):  # faust still sees it (and restarts the agent)
        asyncio.run(agent([1, 2, 3]))
    assert calls == [1, 2]
    ok, why = tasks.health()
    assert not ok and why == "task crashed: aggregate-flows: OverflowError: Python int too large to convert to C long"
    count = lambda task: sample_value(metrics.registry, "netpilot_streams_task_crashes_total", {"task": task})  # noqa: E731
    assert count("aggregate-flows") == 1
    with pytest.raises(OverflowError):
        asyncio.run(agent([2]))
    assert count("aggregate-flows") == 2
    assert "aggregate-flows: OverflowError" in tasks.health()[1]  # the first crash is the one reported


def test_cancellation_is_no_crash() -> None:
    metrics = StreamsMetrics.create()
    tasks = TaskHealth(metrics.task_crashes)

    @tasks.guard("idle-timer")
    async def timer() -> None:
        await asyncio.sleep(3600)

    async def stop_it() -> None:
        t = asyncio.ensure_future(timer())
        await asyncio.sleep(0)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    asyncio.run(stop_it())
    assert tasks.health() == (True, "ok")
    assert sample_value(metrics.registry, "netpilot_streams_task_crashes_total", {"task": "idle-timer"}) == 0


def test_the_service_health_reports_a_crashed_task() -> None:
    svc = StreamsService(StreamsSettings(), StreamsMetrics.create())

    @svc.tasks.guard("link-stats")
    async def agent() -> None:
        raise KeyError("pop")

    with pytest.raises(KeyError):
        asyncio.run(agent())
    assert svc.health() == (False, "task crashed: link-stats: KeyError: 'pop'")
