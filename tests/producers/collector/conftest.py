"""Fixtures of the collector tests: real exporter datagrams, captured once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from netpilot.wire.flows import str_to_addr
from tests.producers.collector.exporters import Export, run_all
from tests.producers.collector.traffic import write_traffic

LOOPBACK = str_to_addr("127.0.0.1")


@pytest.fixture(scope="session")
def traffic_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("traffic") / "traffic.pcap"
    write_traffic(path)
    return path


@pytest.fixture(scope="session")
def exports(tmp_path_factory: pytest.TempPathFactory, traffic_pcap: Path) -> dict[str, Export]:
    """Datagrams from every real exporter (run in parallel, ~10 s in all)."""
    return run_all(tmp_path_factory.mktemp("exports"), traffic_pcap)
