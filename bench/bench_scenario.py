"""``netpilot autopilot plan`` on a PoP-sized scenario: generator and timing.

    .venv/bin/python bench/bench_scenario.py [--prefixes 100000] [--links 50] [--cycles 2]
        [--out DIR] [--yaml]

Writes a scenario shaped like bench_planner.py's PoP (every prefix native on one link, 10 %
ECMP, two exact alternates at lower preference, covering /8 and /32 aggregates on every
third link, heavy-tailed demand, 10 % of it finer than the route (four /26 rows), 5 % IPv6,
ten links at 97 %) as a scenario YAML whose routes and demand are Parquet files
(``routes_file``, ``demand_file``; docs/autopilot-scenarios.md), then runs
``netpilot autopilot plan --scenario ... --cycles N`` on it as a subprocess and prints the
wall time (target: < 10 s for 2 cycles of 100k x 50). ``--yaml`` also writes the same
scenario as one all-YAML file and times that, for comparison.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import yaml


def generate(out: Path, n_prefixes: int, n_links: int, n_overloads: int = 10, seed: int = 7) -> Path:
    rng = np.random.default_rng(seed)
    capacity = 100e9
    links = [f"pr{i % 4 + 1}:et-0/0/{i}" for i in range(n_links)]
    native = rng.integers(0, n_links, n_prefixes)
    rates = rng.pareto(1.3, n_prefixes) * 2e6 + 1e5
    rates *= 0.5 * capacity * n_links / rates.sum()  # average utilisation 50 %
    load = np.bincount(native, weights=rates, minlength=n_links)

    p = np.arange(n_prefixes)
    v6 = p % 20 == 19
    prefix = np.where(
        v6,
        [f"2001:db8:{x % 65536:x}::/48" for x in p.tolist()],
        [f"{(x >> 16) % 224 + 1}.{(x >> 8) & 255}.{x & 255}.0/24" for x in p.tolist()],
    )
    link_of = np.array(links)
    parts = [
        pl.DataFrame({"link_id": link_of[native], "prefix": prefix, "local_pref": 200, "as_path": "64500 64999"}),
        pl.DataFrame(  # ECMP: a second native path on 10 %
            {
                "link_id": link_of[(native[p % 10 == 0] + 1) % n_links],
                "prefix": prefix[p % 10 == 0],
                "local_pref": 200,
                "as_path": "64500 64999",
            }
        ),
    ]
    for k in (7, 13):  # exact alternates at lower preference
        parts.append(
            pl.DataFrame(
                {
                    "link_id": link_of[(native + k) % n_links],
                    "prefix": prefix,
                    "local_pref": 100,
                    "as_path": "64501 64500 64999",
                }
            )
        )
    octets = sorted({(x >> 16) % 224 + 1 for x in range(n_prefixes)})
    cover = [(links[i], f"{o}.0.0.0/8", f"{64500 + i} 1") for i in range(0, n_links, 3) for o in octets]
    cover += [(links[i], "2001:db8::/32", f"{64500 + i} 1") for i in range(0, n_links, 3)]
    parts.append(
        pl.DataFrame(
            {
                "link_id": [c[0] for c in cover],
                "prefix": [c[1] for c in cover],
                "local_pref": 100,
                "as_path": [c[2] for c in cover],
            }
        )
    )
    routes = pl.concat([d.with_columns(pl.col("local_pref").cast(pl.Int64)) for d in parts])
    routes = routes.with_columns(pl.col("as_path").str.split(" ").cast(pl.List(pl.Int64)))

    fine = (p % 10 == 5) & ~v6
    coarse = pl.DataFrame(
        {
            "link_id": link_of[native[~fine]],
            "prefix": prefix[~fine],
            "rate_bps": rates[~fine],
            "samples": (rates[~fine] / 1e6).astype(np.int64) + 1,
        }
    )
    fine_rows = []
    for q in range(4):
        base = [s.rsplit(".", 1)[0] for s in prefix[fine].tolist()]
        fine_rows.append(
            pl.DataFrame(
                {
                    "link_id": link_of[native[fine]],
                    "prefix": [f"{b}.{q * 64}/26" for b in base],
                    "rate_bps": rates[fine] / 4,
                    "samples": (rates[fine] / 4e5).astype(np.int64) + 1,
                }
            )
        )
    demand = pl.concat([coarse, *fine_rows])

    out.mkdir(parents=True, exist_ok=True)
    routes.write_parquet(out / "routes.parquet")
    demand.write_parquet(out / "demand.parquet")
    link_specs = [
        {"id": l, "router": l.split(":")[0], "capacity": capacity, "peer_type": "pni" if i % 3 else "transit"}
        for i, l in enumerate(links)
    ]
    counter = {l: float(max(load[i], (0.97 if i < n_overloads else 0.5) * capacity)) for i, l in enumerate(links)}
    # The default policy but for the validation limit (see bench_planner.py).
    policy = {"mode": "suggest", "max_changes_per_cycle": 1000}
    scenario = {
        "pop": "bench1",
        "policy": policy,
        "links": link_specs,
        "routes_file": "routes.parquet",
        "cycles": [{"rates": counter, "demand_file": "demand.parquet"}],
    }
    path = out / "scenario.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False))
    return path


def write_yaml_twin(columnar: Path) -> Path:
    """The same scenario with routes and demand inline (the pre-columnar format)."""
    spec = yaml.safe_load(columnar.read_text())
    routes: dict[str, list] = {}
    for row in pl.read_parquet(columnar.parent / spec.pop("routes_file")).iter_rows(named=True):
        routes.setdefault(row["link_id"], []).append(
            {"prefix": row["prefix"], "local_pref": row["local_pref"], "as_path": row["as_path"]}
        )
    demand: dict[str, dict] = {}
    cycle = spec["cycles"][0]
    for row in pl.read_parquet(columnar.parent / cycle.pop("demand_file")).iter_rows(named=True):
        demand.setdefault(row["link_id"], {})[row["prefix"]] = {"rate": row["rate_bps"], "samples": row["samples"]}
    spec["routes"], cycle["demand"] = routes, demand
    path = columnar.with_name("scenario-inline.yaml")
    path.write_text(yaml.dump(spec, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False))
    return path


def timed_plan(scenario: Path, cycles: int) -> tuple[float, int]:
    cmd = [str(Path(sys.executable).with_name("netpilot")), "autopilot", "plan", "-s", str(scenario), "-n", str(cycles)]
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - t, done.stdout.count('"schema":"recommendation/1"')


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prefixes", type=int, default=100_000)
    ap.add_argument("--links", type=int, default=50)
    ap.add_argument("--cycles", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="where to write the scenario (default: a temp dir)")
    ap.add_argument("--yaml", action="store_true", help="also time the same scenario as one all-YAML file")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        t = time.perf_counter()
        path = generate(out, args.prefixes, args.links)
        print(f"generated {path} in {time.perf_counter() - t:.1f} s")
        wall, recs = timed_plan(path, args.cycles)
        verdict = "met" if wall < 10 else "NOT met"
        print(
            f"netpilot autopilot plan, Parquet tables, {args.prefixes} prefixes x {args.links} links, "
            f"{args.cycles} cycles: {wall:.1f} s wall ({recs} recommendations); target < 10 s: {verdict}"
        )
        if args.yaml:
            inline = write_yaml_twin(path)
            wall, recs = timed_plan(inline, args.cycles)
            print(f"the same as one YAML file ({inline.stat().st_size / 1e6:.0f} MB): {wall:.1f} s wall ({recs})")


if __name__ == "__main__":
    main()
