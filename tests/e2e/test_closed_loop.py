"""The loop closed: autopilot -> injector -> ExaBGP -> a real BIRD per simulated router ->
the simulator's traffic follows BIRD's selected routes -> counters -> the autopilot.

One real-time run of tests/e2e/closed_loop.yaml (the ams1 PNI surging from 15 s to 75 s),
then, on what the pipeline stored and on the simulator's ground truth:
* the PNI's utilisation *from counters* is under its trigger within two cycles of the first
  ADD, while the surge goes on;
* the overrides were confirmed from the routers (the applied topic, via the injector);
* after the WITHDRAW the moved prefixes leave by the PNI again.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import polars as pl
import pytest

from netpilot import catalog
from netpilot.dev.pipeline import Pipeline, PipelineOptions
from netpilot.kafka.compacted import read_compacted
from netpilot.settings import KafkaSettings
from producers.simulator.scenario import load_scenario

SCENARIO = Path(__file__).with_name("closed_loop.yaml")
CYCLE_S = 5.0
PNI = "ams1-r1:pni-1"
TRIGGER = 0.90  # the PNI's trigger (the policy's pni default)
# Overrides are held until the surge (15-75 s) is over, released in the 75 s after it. A
# shorter hold (20 s) once let the planner release every override mid-surge on a loaded
# machine: its per-prefix rates, from flow windows that were still filling, undercounted the
# moved traffic about 2x for one cycle, so U0 looked under the release threshold while the
# demand was 94 %, and the PNI went back to 96 %. Releases are now judged against the peak U0
# of the last release_cycles cycles (docs/autopilot-design.md §5.3 step 8), so one low
# reading no longer releases; the hold stays long as a second guard.
HOLD_S = 60.0


@pytest.fixture(scope="module")
def loop_kafka(kafka_broker: str):
    from tests.conftest import catalog_topics

    yield from catalog_topics(kafka_broker, f"loop{uuid.uuid4().hex[:8]}.")


@pytest.fixture(scope="module")
def run(loop_kafka: KafkaSettings, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("loop")
    pipe = Pipeline(
        root,
        loop_kafka,
        SCENARIO,
        PipelineOptions(cycle_s=CYCLE_S, hold_s=HOLD_S, autopilot_mode="suggest", injector="apply", prometheus=False),
    )
    applied_seen: dict[str, bytes | None] = {}
    try:
        pipe.publish_network()
        pipe.start()
        sim = pipe.simulate()
        sim.communicate(timeout=300)
        assert sim.returncode == 0, (root / "logs" / "simulator.log").read_text()[-3000:]
        # every key the injector ever wrote (values may be tombstones by now: withdrawn)
        applied_seen = read_compacted(loop_kafka, loop_kafka.topic(catalog.APPLIED_OVERRIDES))
        pipe.wait_flows_stored(timeout=180)
        assert not pipe.failed(), {n: pipe.children[n].tail() for n in pipe.failed()}
    finally:
        codes = pipe.stop()
    assert all(c == 0 for c in codes.values()), codes
    yield pipe, applied_seen


def _recs(pipe: Pipeline) -> list[tuple[str, str, float]]:
    rows = pipe.query(
        "SELECT action, prefix, toUnixTimestamp64Milli(generated_at) FROM netpilot.recommendations "
        f"WHERE from_link_id = '{PNI}' ORDER BY generated_at"
    )
    return [(a, p, int(t) / 1000) for a, p, t in rows]


def _scenario_time(pipe: Pipeline, wall: float) -> float:
    """The scenario time the simulator had reached at wall-clock time ``wall`` (the last step
    that had started by then): on a loaded machine the simulator falls behind the clock, so
    ``wall - start`` would point at steps that ran later."""
    steps = pl.read_csv(pipe.net_dir / "steps.csv").filter(pl.col("wall") <= wall)
    return float(steps["t"].max()) if steps.height else 0.0


def _start(pipe: Pipeline) -> float:
    return int(pipe.query("SELECT min(toUnixTimestamp64Milli(ts)) FROM netpilot.link_stats")[0][0]) / 1000


def test_counters_show_the_pni_relieved_within_two_cycles_of_the_first_add(run) -> None:
    pipe, _ = run
    sc = load_scenario(SCENARIO)
    surge = next(e for e in sc.events if e.kind == "surge")
    start = _start(pipe)
    adds = [r for r in _recs(pipe) if r[0] == "ADD"]
    assert adds, "no ADD: the autopilot never saw the overload"
    first_add = _scenario_time(pipe, adds[0][2])
    assert surge.at_s <= first_add < surge.until_s - 3 * CYCLE_S
    # per second, the PNI's counters (the simulator's ground truth of its interface)
    truth = pl.read_csv(pipe.net_dir / "truth_links.csv").filter(pl.col("link_id") == PNI)
    cap = next(l.capacity_bps for _, _, l in sc.links() if l.link_id == PNI)
    util = {float(t): b * 8 / sc.step_s / cap for t, b in truth.select("t", "bytes").iter_rows()}
    before = [u for t, u in util.items() if surge.at_s + 2 <= t < first_add]
    assert before and max(before) > TRIGGER, f"no overload before the ADD: {max(before or [0]):.2f}"
    relieved_by = first_add + 2 * CYCLE_S
    during = [u for t, u in util.items() if relieved_by <= t < surge.until_s]
    assert during and max(during) < TRIGGER, (
        f"PNI still at {max(during):.0%} two cycles after the first ADD ({first_add:.0f} s)"
    )
    # and through the pipeline: the stored utilisation (counters) of the windows that follow
    rows = pipe.query(
        "SELECT toUnixTimestamp64Milli(window_start), utilisation FROM netpilot.link_utilisation "
        f"WHERE link_id = '{PNI}' AND window_s = 10 AND utilisation IS NOT NULL ORDER BY window_start"
    )
    windows = [(int(w) / 1000 - start, float(u)) for w, u in rows]
    after = [u for w, u in windows if w >= relieved_by and w + 10 <= surge.until_s]
    assert after and max(after) < TRIGGER, windows


def test_overrides_were_confirmed_by_the_routers(run) -> None:
    pipe, applied = run
    adds = {p for a, p, _ in _recs(pipe) if a == "ADD"}
    confirmed = {key.split("|", 1)[1] for key in applied if key.startswith("ams1|")}
    assert adds and adds <= confirmed, f"ADDs never confirmed by a router: {adds - confirmed}"


def test_after_the_withdraw_the_traffic_is_back_on_the_pni(run) -> None:
    pipe, _ = run
    recs = _recs(pipe)
    withdrawn = {p: _scenario_time(pipe, t) for a, p, t in recs if a == "WITHDRAW"}
    assert withdrawn, f"no WITHDRAW after the surge: {recs}"
    # a WITHDRAW in the scenario's last seconds leaves no traffic to look at: judge those with
    # time left (the scenario runs 85 s past the surge, so all but a straggler have it)
    duration = load_scenario(SCENARIO).duration_s
    judged = {p: t for p, t in withdrawn.items() if t + 6 <= duration}
    assert judged, f"every WITHDRAW came in the scenario's last seconds: {withdrawn}"
    withdrawn = judged
    truth = pl.read_csv(pipe.net_dir / "truth_prefixes.csv").filter(pl.col("pop") == "ams1")
    for prefix, t in withdrawn.items():
        later = truth.filter((pl.col("prefix") == prefix) & (pl.col("t") >= t + 3))
        assert later.height and set(later["link_id"]) == {PNI}, (prefix, t, set(later["link_id"]))
        during = truth.filter((pl.col("prefix") == prefix) & (pl.col("t") < t) & (pl.col("t") > t - 10))
        assert PNI not in set(during["link_id"]), f"{prefix} was not moved before its WITHDRAW"
