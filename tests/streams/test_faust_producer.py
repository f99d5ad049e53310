"""streams.faust_producer on its own (the broker test that needs it: test_two_workers.py).

The fix wraps two methods of faust's producer buffer; these tests hand it a small stand-in
that records what is put, so the rule is checked without a broker."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import faust
import pytest

from streams.faust_producer import App, track_buffer


class Buffer:
    def __init__(self) -> None:
        self.queued: list[asyncio.Future] = []

    def put(self, fut: asyncio.Future) -> None:
        self.queued.append(fut)

    async def flush(self) -> None:  # faust's: gives up after 0.1 s without progress
        await asyncio.sleep(0)


def test_flush_waits_for_every_message_buffered_before_it() -> None:
    async def run() -> None:
        producer = SimpleNamespace(buffer=Buffer())
        track_buffer(producer)  # type: ignore[arg-type]
        first, second = asyncio.Future(), asyncio.Future()
        producer.buffer.put(first)
        producer.buffer.put(second)
        assert producer.buffer.queued == [first, second]  # still handed to faust's buffer
        flush = asyncio.ensure_future(producer.buffer.flush())
        await asyncio.sleep(0)  # the flush starts
        later = asyncio.Future()
        producer.buffer.put(later)  # put after the flush started: does not hold it up
        first.set_result(None)
        await asyncio.sleep(0.2)
        assert not flush.done()  # faust's own flush would have returned by now
        second.set_result(None)
        await asyncio.wait_for(flush, 1)
        assert not later.done()

    asyncio.run(run())


def test_flush_raises_when_a_buffered_message_failed() -> None:
    async def run() -> None:
        producer = SimpleNamespace(buffer=Buffer())
        track_buffer(producer)  # type: ignore[arg-type]
        failed = asyncio.Future()
        producer.buffer.put(failed)
        failed.set_exception(RuntimeError("broker said no"))
        with pytest.raises(RuntimeError, match="broker said no"):
            await producer.buffer.flush()
        await producer.buffer.flush()  # a message is waited for once, then forgotten

    asyncio.run(run())


def test_the_app_class_is_a_faust_app() -> None:
    assert issubclass(App, faust.App)
