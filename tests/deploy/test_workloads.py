"""The chart's inputs that need no helm: the workload facts are a fresh render of the
catalog and agree with the components' settings; a PoP values file stays small."""

from __future__ import annotations

from strimzi.deploy import GENERATED_DIR, WORKLOADS, render_chart_files
from tests.deploy.helm import EXAMPLES


def test_workload_facts_equal_a_fresh_render() -> None:
    for name, text in render_chart_files().items():
        path = GENERATED_DIR / name
        assert path.read_text() == text, f"{path} is stale: run `netpilot strimzi render`"


def test_collector_ports_are_the_collectors_defaults() -> None:
    from producers.collector.settings import CollectorSettings

    collector = next(w for w in WORKLOADS if w.key == "collector")
    defaults = CollectorSettings()
    assert dict(collector.udp_ports) == {"netflow": defaults.netflow_port, "sflow": defaults.sflow_port}


def test_a_pop_values_file_is_at_most_ten_lines() -> None:
    for path in (EXAMPLES / "pop-ams1.yaml", EXAMPLES / "pop-fra1.yaml"):
        assert len(path.read_text().splitlines()) <= 10, path
