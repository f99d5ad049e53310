"""streams.faust_offsets on its own (the broker test that needs it: test_fresh_group.py).

The fix wraps two methods of faust's consumer; these tests hand it a small stand-in that
records the seeks, so the rules are checked without a broker: which partitions are sought
where, and which fetched records are handed over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from types import SimpleNamespace

from faust.types import TP

from streams.faust_offsets import seek_uncommitted_to_start

FLOWS0, FLOWS1, FLOWS2 = TP("flows", 0), TP("flows", 1), TP("flows", 2)
CHANGELOG = TP("app-windows-changelog", 0)


class Thread:
    def __init__(self) -> None:
        self.seeks: list[tuple[TP, int]] = []

    def seek(self, tp: TP, offset: int) -> None:
        self.seeks.append((tp, offset))


class Consumer:
    """What the fix uses of faust's aiokafka Consumer."""

    def __init__(self, committed: Mapping[TP, int | None], reset: str = "earliest") -> None:
        self.committed = committed
        self.first = {tp: 5 for tp in committed}  # every log starts at 5 (retention)
        self.fetched: list[tuple[TP, int]] = []
        self._thread = Thread()
        self.app = SimpleNamespace(conf=SimpleNamespace(consumer_auto_offset_reset=reset))
        self.resumed: list[TP] = []

    def assignment(self) -> set[TP]:
        return set(self.committed)

    def resume_partitions(self, tps: list[TP]) -> None:
        self.resumed.extend(tps)

    def _is_changelog_tp(self, tp: TP) -> bool:
        return tp.topic.endswith("-changelog")

    async def seek_to_committed(self) -> Mapping[TP, int | None]:
        return self.committed  # aiokafka: sought only those above 0

    async def earliest_offsets(self, *tps: TP) -> Mapping[TP, int]:
        return {tp: self.first[tp] for tp in tps}

    async def getmany(self, timeout: float) -> AsyncIterator[tuple[TP, SimpleNamespace]]:
        for tp, offset in self.fetched:
            yield tp, SimpleNamespace(offset=offset)


async def handed_over(c: Consumer) -> list[tuple[TP, int]]:
    return [(tp, m.offset) async for tp, m in c.getmany(1.0)]


def test_stream_partitions_without_a_commit_are_sought_to_their_first_offset() -> None:
    async def run() -> None:
        c = Consumer({FLOWS0: None, FLOWS1: 0, FLOWS2: 40, CHANGELOG: None})
        seek_uncommitted_to_start(c)  # type: ignore[arg-type]
        assert await c.seek_to_committed() == c.committed  # faust reads its own bookkeeping from it
        # none: to the first offset; 0: to 0 (aiokafka skips it); committed above 0 and
        # changelogs: left to aiokafka and faust
        assert sorted(c._thread.seeks) == [(FLOWS0, 5), (FLOWS1, 0)]

    asyncio.run(run())


def test_with_latest_a_partition_without_a_commit_is_left_where_it_is() -> None:
    async def run() -> None:
        c = Consumer({FLOWS0: None, FLOWS1: 0}, reset="latest")
        seek_uncommitted_to_start(c)  # type: ignore[arg-type]
        await c.seek_to_committed()
        assert c._thread.seeks == [(FLOWS1, 0)]

    asyncio.run(run())


def test_records_fetched_before_the_seek_are_not_handed_over() -> None:
    async def run() -> None:
        c = Consumer({FLOWS0: None, FLOWS1: 40})
        seek_uncommitted_to_start(c)  # type: ignore[arg-type]
        await c.seek_to_committed()
        c._thread.seeks.clear()
        # a fetch that raced the seek: FLOWS0 from where faust's dropping had got to
        c.fetched = [(FLOWS0, 90), (FLOWS1, 40), (FLOWS0, 91)]
        assert await handed_over(c) == [(FLOWS1, 40)]
        assert c._thread.seeks == [(FLOWS0, 5)]  # sought back once, not per record
        # then from the start: handed over, and from there on faust's own checks apply
        c.fetched = [(FLOWS0, 5), (FLOWS0, 6)]
        assert await handed_over(c) == [(FLOWS0, 5), (FLOWS0, 6)]
        c.fetched = [(FLOWS0, 90)]
        assert await handed_over(c) == [(FLOWS0, 90)]
        assert c._thread.seeks == [(FLOWS0, 5)]

    asyncio.run(run())


def test_a_start_removed_by_retention_meanwhile_is_not_waited_for() -> None:
    async def run() -> None:
        c = Consumer({FLOWS0: None})
        seek_uncommitted_to_start(c)  # type: ignore[arg-type]
        await c.seek_to_committed()
        c._thread.seeks.clear()
        c.first[FLOWS0] = 20  # retention deleted 5..19 before they were fetched
        c.fetched = [(FLOWS0, 20), (FLOWS0, 21)]
        assert await handed_over(c) == [(FLOWS0, 20), (FLOWS0, 21)]
        assert c._thread.seeks == []

    asyncio.run(run())


def test_records_between_the_resume_and_the_seek_are_dropped_and_sought_again() -> None:
    async def run() -> None:
        c = Consumer({FLOWS0: None, FLOWS1: 40, CHANGELOG: None})
        seek_uncommitted_to_start(c)  # type: ignore[arg-type]
        # faust resumes the stream partitions, then seeks: a fetch in between hands over
        # records from where the restore's dropping had got to
        c.resume_partitions([FLOWS0, FLOWS1, CHANGELOG])
        assert c.resumed == [FLOWS0, FLOWS1, CHANGELOG]
        c.fetched = [(FLOWS0, 90), (FLOWS1, 95), (CHANGELOG, 7)]
        assert await handed_over(c) == [(CHANGELOG, 7)]  # changelogs are faust's own business
        await c.seek_to_committed()
        # the seek puts both back (FLOWS1 to its commit, in case it was fetched after it)
        assert sorted(c._thread.seeks) == [(FLOWS0, 5), (FLOWS1, 40)]
        c.fetched = [(FLOWS1, 40), (FLOWS0, 5)]
        assert await handed_over(c) == [(FLOWS1, 40), (FLOWS0, 5)]

    asyncio.run(run())
