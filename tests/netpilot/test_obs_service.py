"""The service contract (netpilot/obs/service.py): the fixed-name series are the component's
own metrics, summed and merged as the contract says, read through a real scrape."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from netpilot.obs import client_recreations
from netpilot.obs.metrics import metrics_for
from netpilot.obs.service import BACKLOG, CLIENT_RECREATIONS, DURATION, ERRORS, LAG, PROCESSED, Errors


def _scrape(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, from the text format Prometheus reads."""
    out = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _demo(registry: CollectorRegistry, component: str = "demo"):  # type: ignore[no-untyped-def]
    m = metrics_for(component, registry)
    items = m.counter("items_total", "items", ["pop"])
    drops = m.counter("dropped_total", "drops", ["pop", "reason"])
    full = m.counter("queue_full_total", "queue full")
    batch = m.histogram("batch_seconds", "batch", ["table"])
    lag = m.gauge("consumer_lag_messages", "lag", ["topic"])
    watermark = m.gauge("watermark_lag_seconds", "wm", ["pop"])
    view = m.service(
        processed={"items": items},
        errors=[Errors(drops, reasons=("late",)), Errors(full, "queue-full")],
        duration=batch,
        backlog=lag,
        lag=watermark,
    )
    return view, items, drops, full, batch, lag, watermark


def test_view_sums_the_components_own_metrics() -> None:
    reg = CollectorRegistry()
    view, items, drops, full, batch, lag, watermark = _demo(reg)
    c = (("component", "demo"),)
    before = _scrape(reg)
    # declared reasons and fixed ones exist at 0 before anything happened
    assert before[(ERRORS, (*c, ("reason", "late")))] == 0
    assert before[(ERRORS, (*c, ("reason", "queue-full")))] == 0
    assert before[(PROCESSED, (*c, ("item", "items")))] == 0

    items.labels("ams1").inc(10)
    items.labels("fra1").inc(5)
    drops.labels("ams1", "late").inc(2)
    drops.labels("fra1", "late").inc(1)
    drops.labels("fra1", "future").inc(4)
    full.inc(3)
    batch.labels("a").observe(0.002)
    batch.labels("b").observe(0.2)
    batch.labels("b").observe(3)
    lag.labels("t1").set(7)
    lag.labels("t2").set(5)
    watermark.labels("ams1").set(1.5)
    watermark.labels("fra1").set(12)

    got = _scrape(reg)
    assert got[(PROCESSED, (*c, ("item", "items")))] == 15
    assert got[(ERRORS, (*c, ("reason", "late")))] == 3
    assert got[(ERRORS, (*c, ("reason", "future")))] == 4
    assert got[(ERRORS, (*c, ("reason", "queue-full")))] == 3
    assert got[(f"{DURATION}_count", c)] == 3
    assert got[(f"{DURATION}_sum", c)] == pytest.approx(3.202)
    assert got[(f"{DURATION}_bucket", (*c, ("le", "0.005")))] == 1
    assert got[(f"{DURATION}_bucket", (*c, ("le", "0.25")))] == 2
    assert got[(f"{DURATION}_bucket", (*c, ("le", "+Inf")))] == 3
    assert got[(BACKLOG, c)] == 12  # messages waiting add up over topics
    assert got[(LAG, c)] == 12  # the PoP furthest behind
    assert view.families() == (PROCESSED, ERRORS, CLIENT_RECREATIONS, DURATION, BACKLOG, LAG)
    # the component's own series are still there, unchanged
    assert got[("netpilot_demo_items_total", (("pop", "ams1"),))] == 10


def test_optional_families_are_absent_when_not_declared() -> None:
    reg = CollectorRegistry()
    m = metrics_for("plain", reg)
    view = m.service(processed={"records": m.counter("records_total", "r")}, errors=[])
    names = {name for name, _labels in _scrape(reg)}
    assert PROCESSED in names and not {f"{DURATION}_count", BACKLOG, LAG} & names
    assert view.families() == (PROCESSED, ERRORS, CLIENT_RECREATIONS)


def test_kafka_client_recreations_are_the_process_counts_at_zero_from_the_start() -> None:
    """Every (client, reason) is a series before the first recreation (a series born at 1
    shows no increase), and a recreation counted anywhere in the process shows on every
    component's view. The counts are process-wide, so this test reads differences."""
    reg = CollectorRegistry()
    m = metrics_for("plain", reg)
    m.service(processed={"records": m.counter("records_total", "r")}, errors=[])

    def exported() -> dict[tuple[str, str], float]:
        return {
            (dict(labels)["client"], dict(labels)["reason"]): v
            for (name, labels), v in _scrape(reg).items()
            if name == CLIENT_RECREATIONS and dict(labels)["component"] == "plain"
        }

    before = exported()
    assert set(before) == set(client_recreations.REASONS)
    assert before == {k: float(v) for k, v in client_recreations.snapshot().items()}
    client_recreations.count("producer", "stranded")
    client_recreations.count("consumer", "fenced")
    client_recreations.count("consumer", "fenced")
    after = exported()
    assert {k: after[k] - before[k] for k in after} == {
        ("consumer", "fenced"): 2,
        ("consumer", "out_of_group"): 0,
        ("producer", "stranded"): 1,
    }
    with pytest.raises(ValueError, match="unknown client recreation"):
        client_recreations.count("producer", "bored")


def test_several_components_on_one_registry_share_each_family() -> None:
    reg = CollectorRegistry()
    _demo(reg, "one")
    _demo(reg, "two")
    text = generate_latest(reg).decode()
    assert text.count(f"# TYPE {PROCESSED} counter") == 1  # one family, two components
    components = {dict(labels)["component"] for name, labels in _scrape(reg) if name == PROCESSED}
    assert components == {"one", "two"}
    with pytest.raises(ValueError, match="already registered"):
        metrics_for("one", reg).service(processed={"x": metrics_for("x").counter("x_total", "x")}, errors=[])


def test_contract_names_cannot_be_taken_by_a_component_metric() -> None:
    reg = CollectorRegistry()
    _demo(reg)
    with pytest.raises(ValueError, match="Duplicated"):
        metrics_for("service", reg).gauge("backlog", "a clash")


def test_a_view_needs_something_processed() -> None:
    with pytest.raises(ValueError, match="processed"):
        metrics_for("empty", CollectorRegistry()).service(processed={}, errors=[])
