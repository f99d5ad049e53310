"""``netpilot routes bmp run --check|--dump``: the configuration path, no broker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

INVENTORY = {
    "pops": {
        "fra1": {
            "routers": {
                "fra1-edge1": {
                    "counters": "external",
                    "links": {
                        "transit-a": {"if_name": "et-0/0/1", "capacity": "100G", "next_hops": ["198.51.100.1"]},
                        "pni-b": {
                            "if_name": "et-0/0/2",
                            "capacity": "10G",
                            "next_hops": ["198.51.100.5", "2001:db8::5"],
                        },
                    },
                }
            }
        }
    }
}


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "netpilot.cli", "routes", "bmp", "run", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_check_reports_the_inventory_and_dump_shows_the_settings(tmp_path: Path) -> None:
    (tmp_path / "inventory.yaml").write_text(yaml.safe_dump(INVENTORY))
    config = tmp_path / "netpilot.yaml"
    config.write_text(yaml.safe_dump({"bmp": {"inventory": str(tmp_path / "inventory.yaml"), "policy": "post"}}))
    out = _run("--config", str(config), "--check")
    assert out.returncode == 0, out.stderr
    assert "2 links on 1 routers, 3 BGP peer addresses" in out.stdout and "post-policy" in out.stdout
    dumped = json.loads(_run("--config", str(config), "--dump").stdout)
    assert (dumped["policy"], dumped["hold_s"], dumped["listen"]) == ("post", 900.0, "127.0.0.1:11019")


def test_a_bad_setting_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "netpilot.yaml"
    config.write_text(yaml.safe_dump({"bmp": {"policy": "loc-rib", "routers": {"not-an-ip": "r1"}}}))
    out = _run("--config", str(config), "--check")
    assert out.returncode == 2
    assert "bmp.policy" in out.stderr or "policy" in out.stderr
    assert "routers" in out.stderr
