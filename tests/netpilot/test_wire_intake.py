"""The consumer-side checks of every message: the ``schema`` header against the topic's
schema, and timestamps against the consumer's clock (netpilot/wire/intake.py)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from netpilot.errors import ConfigError, WireImplausibleTime, WireSchemaMismatch, WireVersionError
from netpilot.kafka.deadletters import REASONS, reason_for
from netpilot.settings import ComponentSettings, WireSettings, load_settings
from netpilot.wire import aggregates, flows
from netpilot.wire.autopilot import LinkSide, Recommendation
from netpilot.wire.injector import InjectorControl
from netpilot.wire.intake import Intake, header
from netpilot.wire.links import LinkInventory, LinkStats
from tests.netpilot.flowgen import make_flows

NOW = 1_800_000_000.0
YEAR = 365 * 86_400.0
DAY = 86_400.0


def intake(**settings: object) -> Intake:
    return Intake(WireSettings(**settings), clock=lambda: NOW)  # type: ignore[arg-type]


def stats(ts: float) -> LinkStats:
    return LinkStats(pop="ams", router="r1", link_id="ams-l1", if_index=3, ts=ts, interval_s=30, out_bps=1e9)


def flows_value(received_ms: np.ndarray) -> bytes:
    table = make_flows(len(received_ms), seed=3)
    i = table.schema.get_field_index("time_received")
    col = pa.array(received_ms.astype(np.int64)).cast(flows.TS)
    return flows.encode_flows(table.set_column(i, "time_received", col))


def recommendation(**kw: object) -> Recommendation:
    base: dict[str, object] = {
        "id": "r1",
        "cycle_id": "c1",
        "generated_at": NOW,
        "valid_until": NOW + 900,
        "pop": "ams",
        "action": "ADD",
        "mode": "inject",
        "prefix": "198.51.100.0/24",
        "afi": 4,
        "rate_bps": 1e9,
        "from": LinkSide(link_id="ams-l1"),
        "to": LinkSide(link_id="ams-l2"),
        "reason": "OVERLOAD",
    }
    return Recommendation.model_validate({**base, **kw})


# -- the schema header ----------------------------------------------------------------


def test_flows_body_under_another_major_or_schema_header_is_refused() -> None:
    value = flows_value(np.full(5, int(NOW * 1000)))
    ok = intake()
    assert ok.flows(value, flows.headers()).num_rows == 5
    assert ok.flows(value, [("schema", b"flows/1.7")]).num_rows == 5  # a newer minor only adds
    assert ok.flows(value, None).num_rows == 5  # no header: the body's own version decides
    for bad in (b"flows/9", b"flows/2.0", b"link-stats/1", b"flows", b""):
        with pytest.raises(WireSchemaMismatch) as err:
            ok.flows(value, [("schema", bad), ("content-type", flows.CONTENT_TYPE.encode())])
        assert "flows/1" in str(err.value)
        assert reason_for(err.value) == "schema-mismatch"


def test_json_body_under_another_schema_header_is_refused() -> None:
    value = stats(NOW).encode()
    ok = intake()
    assert ok.model(LinkStats, value, LinkStats.headers()).out_bps == 1e9
    assert ok.model(LinkStats, value, {"schema": "link-stats/1.2"}).ts == NOW  # a mapping of text, as faust may hand it
    for bad in ("link-stats/9", "link-inventory/1", "flows/1"):
        with pytest.raises(WireSchemaMismatch):
            ok.model(LinkStats, value, [("schema", bad.encode())])
    # the last header of a name wins, as in Kafka clients that return a mapping
    with pytest.raises(WireSchemaMismatch):
        ok.model(LinkStats, value, [("schema", b"link-stats/1"), ("schema", b"link-stats/2")])
    # a mismatch is a version error: consumers that catch WireVersionError keep doing so
    assert issubclass(WireSchemaMismatch, WireVersionError)


def test_header_reading() -> None:
    assert header([("a", b"1"), ("schema", None)], "schema") is None
    assert header([("schema", b"x/1")], "schema") == "x/1"
    assert header({"schema": b"x/1"}, "schema") == "x/1"
    assert header(None, "schema") is None and header([], "schema") is None


# -- timestamps -------------------------------------------------------------------------


def test_link_stats_ten_years_ahead_is_refused_a_few_minutes_is_not() -> None:
    ok = intake()
    with pytest.raises(WireImplausibleTime) as err:
        ok.model(LinkStats, stats(NOW + 10 * YEAR).encode(), LinkStats.headers())
    assert "ahead" in str(err.value) and "wire.max_future_s" in str(err.value)
    assert reason_for(err.value) == "implausible-time"
    assert ok.model(LinkStats, stats(NOW + 299).encode(), LinkStats.headers()).ts == NOW + 299
    with pytest.raises(WireImplausibleTime):
        ok.model(LinkStats, stats(NOW + 301).encode(), LinkStats.headers())
    tight = intake(schemas={"link-stats": {"max_future_s": 5}})
    with pytest.raises(WireImplausibleTime):
        tight.model(LinkStats, stats(NOW + 6).encode(), None)


def test_age_follows_the_topic_retention_and_compacted_topics_have_none() -> None:
    ok = intake()
    # link-stats keeps 3 days; a segment can outlive that by 7: 10 days is the limit
    assert ok.limits("link-stats/1") == (300.0, 10 * DAY)
    assert ok.limits("flows/1") == (300.0, 8 * DAY)
    assert ok.model(LinkStats, stats(NOW - 9.9 * DAY).encode(), None).ts == NOW - 9.9 * DAY
    for ts in (NOW - 10.1 * DAY, 0.0, -1.0):
        with pytest.raises(WireImplausibleTime) as err:
            ok.model(LinkStats, stats(ts).encode(), None)
        assert "older" in str(err.value)
    assert intake(max_age_s=3600).limits("link-stats/1")[1] == 3600
    assert intake(max_age_s=3600, schemas={"link-stats": {"max_age_s": 60}}).limits("link-stats/1")[1] == 60
    # the latest state of a compacted topic may be old: a year-old recommendation is fine
    old = recommendation(generated_at=NOW - YEAR, valid_until=NOW - YEAR + 900)
    assert ok.model(Recommendation, old.encode(), Recommendation.headers()).generated_at == NOW - YEAR
    assert ok.limits("recommendation/1")[1] is None


def test_deadlines_and_non_numbers() -> None:
    ok = intake()
    with pytest.raises(WireImplausibleTime) as err:
        ok.model(Recommendation, recommendation(valid_until=NOW + 10 * YEAR).encode(), None)
    assert "wire.max_horizon_s" in str(err.value)
    with pytest.raises(WireImplausibleTime):
        ok.model(Recommendation, recommendation(hold_until=NOW + 8 * DAY).encode(), None)
    assert ok.model(Recommendation, recommendation(hold_until=NOW + 600).encode(), None).hold_until == NOW + 600
    # Python's json reads NaN and Infinity: neither may pass as a time
    for raw in (b"NaN", b"Infinity", b"-Infinity"):
        value = stats(NOW).encode().replace(str(NOW).encode(), raw)
        with pytest.raises(WireImplausibleTime):
            ok.model(LinkStats, value, None)
    assert math.isnan(LinkStats.decode(stats(NOW).encode().replace(str(NOW).encode(), b"NaN")).ts)


def test_a_drain_from_a_skewed_clock_still_passes() -> None:
    drain = InjectorControl(kind="drain", pop="*", at=NOW + 10 * YEAR)
    assert intake().model(InjectorControl, drain.encode(), InjectorControl.headers()).kind == "drain"


def test_state_without_timestamps_passes() -> None:
    link = LinkInventory(pop="ams", link_id="ams-l1", router="r1", capacity_bps=1e9)
    assert intake().model(LinkInventory, link.encode(), LinkInventory.headers()) == link


def test_flows_batch_with_one_row_ahead_is_refused() -> None:
    ok = intake()
    now_ms = int(NOW * 1000)
    good = np.full(100, now_ms) - np.arange(100) * 1000
    assert ok.flows(flows_value(good), flows.headers()).num_rows == 100
    bad = good.copy()
    bad[57] = now_ms + int(10 * YEAR * 1000)
    with pytest.raises(WireImplausibleTime) as err:
        ok.flows(flows_value(bad), flows.headers())
    assert "max(time_received)" in str(err.value)
    old = good.copy()
    old[3] = 0
    with pytest.raises(WireImplausibleTime) as err:
        ok.flows(flows_value(old), flows.headers())
    assert "min(time_received)" in str(err.value)
    # the two halves, for consumers with their own decoder
    table = flows.decode_flows(flows_value(bad))
    with pytest.raises(WireImplausibleTime):
        ok.check_times(table, flows.SCHEMA_ID)


def test_aggregates_window_start_is_checked() -> None:
    def value(start_s: float) -> bytes:
        n = 3
        t = pa.table(
            {
                "window_start": pa.array([int(start_s * 1000)] * n).cast(flows.TS),
                "window_s": pa.array([60] * n, pa.uint32()),
                "pop": ["ams"] * n,
                "link_id": ["ams-l1"] * n,
                "dst_prefix": pa.array([b"\x00" * 16] * n, flows.ADDR),
                "dst_prefix_len": pa.array([24] * n, pa.uint8()),
                "dst_as": pa.array([1] * n, pa.uint32()),
                "bytes": pa.array([1] * n, pa.uint64()),
                "packets": pa.array([1] * n, pa.uint64()),
                "flows": pa.array([1] * n, pa.uint64()),
                "samples": pa.array([1] * n, pa.uint64()),
            }
        )
        return aggregates.encode_aggregates(t)

    ok = intake()
    assert ok.aggregates(value(NOW - 120), aggregates.headers()).num_rows == 3
    with pytest.raises(WireImplausibleTime):
        ok.aggregates(value(NOW + 10 * YEAR), aggregates.headers())
    with pytest.raises(WireSchemaMismatch):
        ok.aggregates(value(NOW - 120), flows.headers())


# -- settings ---------------------------------------------------------------------------


class _Comp(ComponentSettings):
    COMPONENT = "comp"


def test_wire_settings_from_yaml_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("wire:\n  max_future_s: 60\n  schemas:\n    link-stats: {max_age_s: 3600}\n")
    s = load_settings(_Comp, cfg)
    assert s.wire.limits("link-stats") == (60, 3600)
    monkeypatch.setenv("NETPILOT_WIRE__MAX_FUTURE_S", "30")
    assert load_settings(_Comp, cfg).wire.max_future_s == 30
    cfg.write_text("wire:\n  schemas:\n    link-stat: {max_age_s: 3600}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(_Comp, cfg)
    assert "link-stat" in str(err.value) and "link-stats" in str(err.value)


def test_every_reason_is_listed() -> None:
    assert {"schema-mismatch", "implausible-time"} <= set(REASONS)


def test_decode_or_dead_letter_with_an_intake() -> None:
    """The batch helper of netpilot.kafka checks headers and times when given an intake."""
    from confluent_kafka import Message

    from netpilot.kafka.deadletters import DeadLetterPublisher, decode_or_dead_letter
    from netpilot.settings import KafkaSettings

    class Producer:  # what DeadLetterPublisher uses of KafkaProducer
        kafka = KafkaSettings()
        sent: list[tuple[str, list]] = []

        def produce(self, topic: str, value: bytes | None, key: str, headers: list) -> None:
            self.sent.append((key, headers))

    def msg(offset: int, value: bytes, schema: bytes) -> Message:
        return Message(topic="t", partition=0, offset=offset, value=value, headers=[("schema", schema)])

    good = msg(0, flows_value(np.full(3, int(NOW * 1000))), b"flows/1")
    other = msg(1, flows_value(np.full(3, int(NOW * 1000))), b"flows/9")
    ahead = msg(2, flows_value(np.full(3, int((NOW + YEAR) * 1000))), b"flows/1")
    producer = Producer()
    reasons: list[str] = []
    out = decode_or_dead_letter(
        [good, other, ahead],
        flows.decode_flows,
        DeadLetterPublisher(producer, "test"),  # type: ignore[arg-type]
        on_dead=reasons.append,
        intake=intake(),
        schema_id=flows.SCHEMA_ID,
    )
    assert [m.offset() for m, _ in out] == [0]
    assert reasons == ["schema-mismatch", "implausible-time"]
    assert [k for k, _ in producer.sent] == ["t|0|1", "t|0|2"]
