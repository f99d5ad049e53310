"""``netpilot snmp poll --check``: validates the settings and the inventory and exits, as a
component's ``run --check`` (the chart's pod command is checked so in the image's test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def _check(tmp_path: Path, inventory: Path) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "netpilot.yaml"
    config.write_text(f"snmp: {{inventory: {inventory}}}\n")
    return subprocess.run(
        [sys.executable, "-m", "netpilot.cli", "snmp", "poll", "--config", str(config), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_check_loads_the_inventory_and_polls_nothing(tmp_path: Path) -> None:
    proc = _check(tmp_path, REPO / "examples" / "inventory.yaml")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok: ") and proc.stdout.split()[1].isdigit() and int(proc.stdout.split()[1]) > 0


def test_check_fails_with_the_inventory_error(tmp_path: Path) -> None:
    proc = _check(tmp_path, tmp_path / "missing.yaml")
    assert proc.returncode == 2
    assert "missing.yaml" in proc.stderr and "cannot read" in proc.stderr
