"""The whole pipeline on the real broker: simulator -> collector -> Kafka -> streams ->
autopilot, with the ClickHouse sink (chDB) and the Prometheus exporter reading along.

One real-time run of tests/e2e/scenario.yaml (70 s, the ams1 PNI surging from 15 s), then:
ClickHouse raw-flow totals per link against the simulator's ground truth, the ADD for the
congested PNI and none for healthy links, and link-utilisation coverage.
"""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import polars as pl
import pytest

from netpilot.dev.pipeline import Pipeline, PipelineOptions
from netpilot.settings import KafkaSettings
from producers.simulator.scenario import load_scenario

SCENARIO = Path(__file__).with_name("scenario.yaml")
CYCLE_S = 5.0
PNI = "ams1-r1:pni-1"


@pytest.fixture(scope="module")
def e2e_kafka(kafka_broker: str):
    """``kafka_settings`` for the module: one run feeds every assertion."""
    from tests.conftest import catalog_topics

    yield from catalog_topics(kafka_broker, f"e2e{uuid.uuid4().hex[:8]}.")


@pytest.fixture(scope="module")
def run(e2e_kafka: KafkaSettings, tmp_path_factory: pytest.TempPathFactory):
    """Run the scenario once through the pipeline; yield (pipeline, ground truth per link)."""
    kafka_settings = e2e_kafka
    root = tmp_path_factory.mktemp("e2e")
    pipe = Pipeline(root, kafka_settings, SCENARIO, PipelineOptions(cycle_s=CYCLE_S, hold_s=60.0))
    try:
        pipe.publish_network()
        pipe.start()
        sim = pipe.simulate()
        out, _ = sim.communicate(timeout=200)
        assert sim.returncode == 0, (root / "logs" / "simulator.log").read_text()[-3000:]
        assert not pipe.failed(), pipe.failed()
        # every flow the collector published is in ClickHouse before anything is compared
        pipe.wait_flows_stored(timeout=180)
        assert not pipe.failed(), {n: pipe.children[n].tail() for n in pipe.failed()}
    finally:
        codes = pipe.stop()
    assert all(c == 0 for c in codes.values()), codes
    truth = pl.read_csv(pipe.net_dir / "truth_links.csv")
    yield pipe, truth


def totals(pipe: Pipeline, sql: str) -> dict[str, float]:
    return {row[0]: float(row[1]) for row in pipe.query(sql)}


def test_raw_flow_totals_match_the_ground_truth(run) -> None:
    pipe, truth = run
    got = totals(pipe, "SELECT link_id, sum(bytes_scaled) FROM netpilot.flows_raw GROUP BY link_id")
    want = {r["link_id"]: r["bytes"] for r in truth.group_by("link_id").agg(pl.col("bytes").sum()).to_dicts()}
    assert "" not in got, f"flows without a link: {got['']} bytes (inventory mismatch)"
    # ams1-r1 exports unsampled IPFIX: every byte is accounted for, exactly
    for link in ("ams1-r1:pni-1", "ams1-r1:transit-1"):
        assert got[link] == want[link], (link, got[link], want[link])
    # sampled exporters: within 4 standard errors of the estimate. Packet sampling 1:N of P
    # packets of ~s bytes: variance of the scaled bytes ~ N * s * bytes_true.
    rates = {"ams1-r2:ix-1": 1000, "fra1-r1:transit-1": 100, "fra1-r1:pni-2": 100}  # sampling 1:N
    for link, rate in rates.items():
        sigma = math.sqrt(rate * 1500 * want[link])
        assert abs(got[link] - want[link]) < 4 * sigma, (link, got[link], want[link], sigma)


def test_congested_pni_gets_an_add_within_one_cycle_and_healthy_links_none(run) -> None:
    pipe, _ = run
    sc = load_scenario(SCENARIO)
    rows = pipe.query(
        "SELECT action, from_link_id, to_link_id, toUnixTimestamp64Milli(generated_at) "
        "FROM netpilot.recommendations ORDER BY generated_at"
    )
    assert rows, "no recommendation at all"
    sources = {r[1] for r in rows}
    assert sources == {PNI}, f"recommendations moved traffic off healthy links: {sources}"
    adds = [r for r in rows if r[0] == "ADD"]
    assert adds and all(r[2] in ("ams1-r1:transit-1", "ams1-r2:ix-1") for r in adds), adds
    # the simulator's clock: its first counter reading (before any traffic) is at its start
    start = int(pipe.query("SELECT min(toUnixTimestamp64Milli(ts)) FROM netpilot.link_stats")[0][0]) / 1000
    # the overload is visible at the first counter reading that covers a surge step; one
    # cycle later the ADD must be out (+5 s for the reading to travel and the plan to publish)
    surge = next(e for e in sc.events if e.kind == "surge")
    visible = start + math.ceil((surge.at_s + sc.step_s) / sc.stats_interval_s - 1e-9) * sc.stats_interval_s
    first_add = int(adds[0][3]) / 1000
    assert start + surge.at_s <= first_add, "an ADD before the surge"
    assert first_add <= visible + CYCLE_S + 5, (
        f"first ADD {first_add - start:.1f} s into the run, overload visible at {visible - start:.1f} s"
    )


def test_link_utilisation_coverage_close_to_one_for_the_unsampled_exporter(run) -> None:
    pipe, _ = run
    rows = pipe.query(
        "SELECT link_id, median(coverage), count() FROM netpilot.link_utilisation "
        "WHERE window_s = 10 AND coverage IS NOT NULL GROUP BY link_id"
    )
    cov = {r[0]: (float(r[1]), int(r[2])) for r in rows}
    for link in ("ams1-r1:pni-1", "ams1-r1:transit-1"):
        assert link in cov and cov[link][1] >= 3, cov
        assert cov[link][0] == pytest.approx(1.0, abs=0.05), cov
    # the sampled ones are estimates: near 1, looser
    assert cov["ams1-r2:ix-1"][0] == pytest.approx(1.0, abs=0.25), cov
