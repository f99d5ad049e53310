"""``netpilot autopilot plan`` end to end: the real CLI over the example scenario."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from streams.autopilot import scenario as scn
from streams.autopilot.errors import ScenarioError

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "scenarios" / "ams1-pni-overload.yaml"
NETPILOT = [sys.executable, "-m", "netpilot.cli"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NETPILOT, "autopilot", "plan", *args], capture_output=True, text=True, cwd=REPO, timeout=60)


def test_example_scenario_adds_refreshes_then_withdraws() -> None:
    out = run_cli("--scenario", str(EXAMPLE))
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    summaries = [l for l in lines if l["schema"] == "cycle-summary/1"]
    recs = [l for l in lines if l["schema"] == "recommendation/1"]
    assert len(summaries) == 8
    assert [(s["adds"], s["refreshes"], s["withdraws"]) for s in summaries] == [
        (2, 0, 0),
        (0, 2, 0),
        (0, 2, 0),
        (0, 2, 0),
        (0, 2, 0),  # calm, hold over, but one calm reading is not a trend (release_cycles = 4)
        (0, 2, 0),
        (0, 2, 0),
        (0, 0, 2),  # the fourth calm cycle in a row: released
    ]
    adds = [r for r in recs if r["action"] == "ADD"]
    assert [(r["prefix"], r["split_from"], r["to"]["link_id"], r["to"]["route_prefix"]) for r in adds] == [
        ("198.51.100.64/26", "198.51.100.0/24", "pr2:et-0/0/3", "198.51.100.0/22"),
        ("198.51.100.192/26", "198.51.100.0/24", "pr2:et-0/0/3", "198.51.100.0/22"),
    ]
    assert adds[0]["from"]["util_projected_before"] == pytest.approx(0.97)
    assert summaries[0]["util_projected"]["pr1:et-0/0/1"] == pytest.approx(0.85)
    assert summaries[0]["overloaded_links"] == ["pr1:et-0/0/1"] and summaries[0]["mode"] == "suggest"
    withdraws = [r for r in recs if r["action"] == "WITHDRAW"]
    assert [(r["prefix"], r["reason"]) for r in withdraws] == [
        ("198.51.100.192/26", "RELEASE"),
        ("198.51.100.64/26", "RELEASE"),
    ]
    assert all(r["generated_at"] >= r["hold_until"] for r in withdraws)


def test_cycles_option_repeats_the_last_cycle_and_changes_only_hides_refresh() -> None:
    out = run_cli("--scenario", str(EXAMPLE), "--cycles", "12", "--changes-only")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert sum(1 for l in lines if l["schema"] == "cycle-summary/1") == 12
    assert not any(l.get("action") == "REFRESH" for l in lines)


def test_bad_scenario_exits_2_and_names_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("pop: x\nlinks: [{id: a, router: r, capacity: 10Gig}]\ncycles: [{}]\nextra: 1\n")
    out = run_cli("--scenario", str(bad))
    assert out.returncode == 2
    assert "extra: unknown key" in out.stderr
    unknown = tmp_path / "unknown-link.yaml"
    unknown.write_text(
        "pop: x\nlinks: [{id: a, router: r, capacity: 10G}]\ncycles: [{demand: {b: {198.51.100.0/24: 1G}}}]\n"
    )
    out = run_cli("--scenario", str(unknown))
    assert out.returncode == 2 and "unknown link 'b'" in out.stderr


def test_scenario_changes_apply_and_persist() -> None:
    spec = scn.load(EXAMPLE)
    spec = spec.model_copy(
        update={
            "cycles": [
                spec.cycles[0].model_copy(update={"repeat": 1}),
                scn.CycleSpec(routes_withdraw={"pr2:et-0/0/3": ["198.51.100.0/22"]}),
                scn.CycleSpec(links={"pr2:et-0/0/3": scn.LinkChange(drained=True)}, policy={"kill_switch": True}),
            ]
        }
    )
    results = [p for _, p in scn.run(spec, 4)]
    assert [i.reason for i in results[1].items if i.action == "WITHDRAW"] == ["ROUTE_WITHDRAWN"] * 2
    assert results[2].report.kill_switch and results[3].report.kill_switch
    # The overload remains: cycle 1 moves what still has an alternate (not the /26s).
    assert [i.prefix for i in results[1].items if i.action == "ADD"] == ["2001:db8:100::/48"]
    assert all(i.action != "ADD" for p in results[2:] for i in p.items)


def test_bandwidth_units() -> None:
    assert scn.bandwidth("10G") == 10e9 and scn.bandwidth("250M") == 250e6
    assert scn.bandwidth("2.5e9") == 2.5e9 and scn.bandwidth(7) == 7.0 and scn.bandwidth("1.5kbps") == 1500
    with pytest.raises(ValueError, match="10G"):
        scn.bandwidth("ten gigs")


def test_prior_overrides_are_continued(tmp_path: Path) -> None:
    text = EXAMPLE.read_text() + ("overrides:\n  - {prefix: '2001:db8:100::/48', to_link: 'pr2:et-0/0/3', age_s: 60}\n")
    path = tmp_path / "prior.yaml"
    path.write_text(text)
    first = next(p for _, p in scn.run(scn.load(path), 1))
    # The prior override already takes the PNI under its target: nothing else moves.
    assert [(i.action, i.prefix, i.created_at) for i in first.items] == [
        ("REFRESH", "2001:db8:100::/48", 1_767_225_600.0 - 60)
    ]
    with pytest.raises(ScenarioError, match="unknown link"):
        list(scn.run(scn.load(path).model_copy(update={"cycles": [scn.CycleSpec(rates={"zz": 1})]}), 1))


def test_config_gives_the_base_policy(tmp_path: Path) -> None:
    config = tmp_path / "netpilot.yaml"
    config.write_text("autopilot:\n  policy:\n    max_adds_per_cycle: 1\n")
    out = run_cli("--scenario", str(EXAMPLE), "--cycles", "1", "--config", str(config))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.splitlines()[-1])
    assert summary["adds"] == 1 and summary["mode"] == "suggest"  # mode from the scenario
    assert summary["unresolved_bps"] == {}  # 1 Gbps moved: 0.87 is still under hi (0.90)


def test_input_ages_are_checked_and_can_be_given_per_link(tmp_path: Path) -> None:
    base = scn.load(EXAMPLE)
    aged = base.model_copy(
        update={"cycles": [scn.CycleSpec.model_validate({"input_age_s": {"counters_by_link": {"pr1:et-0/0/1": 200}}})]}
    )
    (first,) = [p for _, p in scn.run(aged, 1)]
    assert first.report.fail_static and first.report.stale == ("counters:pr1:et-0/0/1:200s",)
    # A misspelled input is an error, not a silently fresh one.
    typo = tmp_path / "typo.yaml"
    typo.write_text(EXAMPLE.read_text().replace("  - repeat: 4\n", "  - repeat: 4\n    input_age_s: {flow: 300}\n", 1))
    out = run_cli("--scenario", str(typo))
    assert out.returncode == 2 and "input_age_s.flow" in out.stderr and "unknown key" in out.stderr
    with pytest.raises(ScenarioError, match="counters_by_link: unknown link 'zz'"):
        bad = base.model_copy(
            update={"cycles": [scn.CycleSpec.model_validate({"input_age_s": {"counters_by_link": {"zz": 1}}})]}
        )
        list(scn.run(bad, 1))
