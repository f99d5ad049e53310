"""``netpilot report``: the dashboards' ClickHouse panels as PNG charts and an HTML page."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np

from grafana import generate
from grafana.panels import clickhouse_panels
from grafana.report import build_report
from grafana.report_cli import parse_since
from sinks.clickhouse.client import ClickHouseClient
from tests.grafana.store import Store
from tests.sinks.clickhouse.helpers import NETPILOT, REPO

PANELS = len(clickhouse_panels(generate.load_all()))  # one chart per ClickHouse panel


def _is_real_chart(png: Path) -> None:
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    img = mpimg.imread(png)
    assert img.shape[0] >= 400 and img.shape[1] >= 1000, (png, img.shape)
    colours = np.unique(img.reshape(-1, img.shape[2]), axis=0)
    assert len(colours) > 50, (png, len(colours))  # lines, text, legend: not a blank canvas


def test_report_renders_every_panel(store_client: ClickHouseClient, grafana_store: Store, tmp_path: Path) -> None:
    out = tmp_path / "report"
    results = build_report(store_client, out, 3600, now=grafana_store.end_s + 60)
    assert len(results) == PANELS and not [r for r in results if r.error]
    assert all(r.rows > 0 for r in results), [(r.title, r.rows) for r in results if not r.rows]
    page = (out / "index.html").read_text()
    for r in results:
        assert r.png is not None and r.png.name in page
        _is_real_chart(r.png)
    assert "toDateTime(" in page and "$__" not in page  # the SQL shown is the expanded SQL


def test_report_narrowed_to_one_pop(store_client: ClickHouseClient, grafana_store: Store, tmp_path: Path) -> None:
    results = build_report(store_client, tmp_path, 3600, now=grafana_store.end_s + 60, narrow={"pop": ["fra1"]})
    per_pop = next(r for r in results if r.title == "Traffic per PoP")
    assert "pop IN ('fra1')" in per_pop.sql
    assert next(r for r in results if r.title == "Recommendations").rows == 0  # the autopilot ran in ams1


def test_cli(grafana_store: Store, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    run = subprocess.run(
        [*NETPILOT, "report", "--since", "1h", "--dsn", grafana_store.dsn, "--out", str(out)],
        cwd=REPO,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"{PANELS} panels rendered, 0 failed" in run.stdout
    assert len(list(out.glob("*.png"))) == PANELS
    bad = subprocess.run([*NETPILOT, "report", "--since", "an hour"], cwd=REPO, capture_output=True, text=True)
    assert bad.returncode == 2 and "--since" in bad.stderr
    assert parse_since("90m") == 5400 and parse_since("2d") == 172800
