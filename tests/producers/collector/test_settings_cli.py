"""Settings defaults, `netpilot collector check|run --check|--dump`, `netpilot decode` on pcapng."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from netpilot.settings import load_settings
from producers.collector.decode.bounds import FlowBounds
from producers.collector.settings import CollectorSettings
from tests.producers.collector.exporters import Export


def netpilot(*args: str) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    return subprocess.run([sys.executable, "-m", "netpilot.cli", *args], capture_output=True, text=True, timeout=60)


def test_defaults_validate_and_env_overrides(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    s = CollectorSettings()
    assert (s.netflow_port, s.sflow_port, s.default_sampling_rate) == (2055, 6343, 1)
    monkeypatch.setenv("NETPILOT_COLLECTOR__NETFLOW_PORT", "9995")
    assert load_settings(CollectorSettings).netflow_port == 9995


def test_plausibility_bounds_are_settings(monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert CollectorSettings().plausibility.bounds() == FlowBounds()  # the documented defaults
    monkeypatch.setenv("NETPILOT_COLLECTOR__PLAUSIBILITY__MAX_FUTURE_S", "120")
    cfg = tmp_path / "netpilot.yaml"
    cfg.write_text("collector:\n  plausibility:\n    max_bytes_per_packet: 9216\n")
    b = load_settings(CollectorSettings, cfg).plausibility.bounds()
    assert b is not None and (b.max_future_s, b.max_bytes_per_packet, b.max_past_s) == (120, 9216, 3600)
    cfg.write_text("collector:\n  plausibility:\n    enabled: false\n")
    assert load_settings(CollectorSettings, cfg).plausibility.bounds() is None
    cfg.write_text("collector:\n  plausibility:\n    min_bytes_per_packet: 100\n    max_bytes_per_packet: 50\n")
    res = netpilot("collector", "run", "--config", str(cfg), "--check")
    assert res.returncode == 2 and "min_bytes_per_packet" in res.stderr + res.stdout


def test_check_and_dump(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(
        "pops: [{name: p, routers: [{name: r, exporter: 192.0.2.1, links: [{link_id: l, if_index: 1}]}]}]\n"
        "routes: [{prefix: 198.51.100.0/24, dst_as: 1}]\n"
    )
    cfg = tmp_path / "netpilot.yaml"
    cfg.write_text(f"collector:\n  inventory_file: {inv}\n  netflow_port: 2056\n")
    res = netpilot("collector", "check", "--config", str(cfg))
    assert res.returncode == 0 and "1 pops, 1 exporters, 1 links, 1 routes" in res.stdout
    res = netpilot("collector", "run", "--config", str(cfg), "--dump")
    assert res.returncode == 0 and json.loads(res.stdout)["netflow_port"] == 2056
    cfg.write_text("collector:\n  netflow_prot: 1\n")
    res = netpilot("collector", "run", "--config", str(cfg), "--check")
    assert res.returncode == 2 and "netflow_prot" in res.stderr


def test_decode_reads_pcapng_and_reports_skips(exports: dict[str, Export], tmp_path: Path) -> None:
    e = exports["pmacctd-sflow"]
    ng = tmp_path / "sflow.pcapng"
    subprocess.run(
        [shutil.which("tshark") or "tshark", "-r", str(e.pcap), "-F", "pcapng", "-w", str(ng)],
        check=True,
        capture_output=True,
        timeout=60,
    )
    res = netpilot("decode", str(ng), "--stats")
    assert res.returncode == 0, res.stderr
    flows = [json.loads(line) for line in res.stdout.splitlines()]
    stats = json.loads(res.stderr.strip().splitlines()[-1])
    assert len(flows) == stats["flows"]["sflow5"] > 0 and {f["protocol"] for f in flows} == {"sflow5"}
    bad = tmp_path / "not.pcap"
    bad.write_bytes(b"hello world, not a capture")
    res = netpilot("decode", str(bad))
    assert res.returncode == 1 and "not a pcap" in res.stderr
