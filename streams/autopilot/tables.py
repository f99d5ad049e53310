"""Columnar scenario tables: routes and demand read from Parquet or CSV files.

A PoP-sized scenario (1e5 prefixes x 50 links, ~4e5 routes) written as YAML spends most of
``netpilot autopilot plan`` parsing YAML and building one pydantic object per row. A
scenario may instead name a ``routes_file`` and per cycle a ``demand_file``
(docs/autopilot-scenarios.md): they are read with polars into columns once, and go into
the planner's columnar :class:`~streams.autopilot.model.Snapshot` through
:meth:`SnapshotBuilder.add_route_columns` / ``add_demand_columns`` without an object per
row. Only the per-route ``as_path`` and ``next_hop`` stay Python values, because the
snapshot carries them that way for the recommendations.

Columns (names as below; others are an error, so a misspelled optional column is not
silently ignored):

* routes: ``link_id``, ``prefix`` (required); ``local_pref`` (100), ``as_path`` (a list of
  ASNs, or in CSV a space-separated string; empty), ``origin`` (igp), ``med`` (0),
  ``next_hop`` (none), ``own`` (false);
* demand: ``link_id``, ``prefix``, ``rate_bps`` (required); ``samples`` (0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from streams.autopilot.errors import ScenarioError
from streams.autopilot.model import SnapshotBuilder

ROUTE_COLUMNS = ("link_id", "prefix", "local_pref", "as_path", "origin", "med", "next_hop", "own")
DEMAND_COLUMNS = ("link_id", "prefix", "rate_bps", "samples")


@dataclass(frozen=True, eq=False)
class RouteColumns:
    path: Path
    link_id: list[str]
    prefix: list[str]
    local_pref: np.ndarray
    med: np.ndarray
    origin: list[str]
    as_path: list[tuple[int, ...]]
    next_hop: list[str | None]
    own: np.ndarray

    def add_to(self, b: SnapshotBuilder) -> None:
        b.add_route_columns(
            str(self.path),
            self.link_id,
            self.prefix,
            local_pref=self.local_pref,
            med=self.med,
            origin=self.origin,
            as_paths=self.as_path,
            next_hops=self.next_hop,
            own=self.own,
        )


@dataclass(frozen=True, eq=False)
class DemandColumns:
    path: Path
    link_id: list[str]
    prefix: list[str]
    rate_bps: np.ndarray
    samples: np.ndarray

    def add_to(self, b: SnapshotBuilder) -> None:
        b.add_demand_columns(str(self.path), self.link_id, self.prefix, self.rate_bps, self.samples)


def read_routes(path: Path) -> RouteColumns:
    df = _read(path, ROUTE_COLUMNS, ("link_id", "prefix"))
    n = df.height
    try:
        no_path: tuple[int, ...] = ()
        as_path = _as_paths(df["as_path"]) if "as_path" in df.columns else [no_path] * n
        return RouteColumns(
            path=path,
            link_id=_strings(df, "link_id"),
            prefix=_strings(df, "prefix"),
            local_pref=_ints(df, "local_pref", 100),
            med=_ints(df, "med", 0),
            origin=_strings(df, "origin") if "origin" in df.columns else ["igp"] * n,
            as_path=as_path,
            next_hop=df["next_hop"].cast(pl.String).to_list() if "next_hop" in df.columns else [None] * n,
            own=df["own"].cast(pl.Boolean).fill_null(False).to_numpy() if "own" in df.columns else np.zeros(n, bool),
        )
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc


def read_demand(path: Path) -> DemandColumns:
    df = _read(path, DEMAND_COLUMNS, ("link_id", "prefix", "rate_bps"))
    try:
        rate = df["rate_bps"].cast(pl.Float64)
        if rate.null_count():
            raise ValueError(f"rate_bps is empty on row {int(rate.is_null().arg_max() or 0)}")
        return DemandColumns(
            path=path,
            link_id=_strings(df, "link_id"),
            prefix=_strings(df, "prefix"),
            rate_bps=rate.to_numpy(),
            samples=_ints(df, "samples", 0),
        )
    except (pl.exceptions.PolarsError, ValueError) as exc:
        raise ScenarioError(f"{path}: {exc}") from exc


def _read(path: Path, known: tuple[str, ...], required: tuple[str, ...]) -> pl.DataFrame:
    try:
        if path.suffix == ".parquet":
            df = pl.read_parquet(path)
        elif path.suffix == ".csv":
            # as_path stays text in CSV ("64500 64999"); everything else is inferred.
            df = pl.read_csv(path, schema_overrides={"as_path": pl.String, "next_hop": pl.String})
        else:
            raise ScenarioError(f"{path}: a table file must end in .parquet or .csv")
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ScenarioError(f"{path}: cannot read the table: {exc}") from exc
    unknown = sorted(set(df.columns) - set(known))
    missing = [c for c in required if c not in df.columns]
    if unknown or missing:
        raise ScenarioError(
            f"{path}: columns must be {list(required)} plus any of {[c for c in known if c not in required]}; "
            f"missing {missing}, unknown {unknown}"
        )
    return df


def _strings(df: pl.DataFrame, name: str) -> list[str]:
    col = df[name].cast(pl.String)
    if col.null_count():
        raise ValueError(f"{name} is empty on row {int(col.is_null().arg_max() or 0)}")
    return col.to_list()


def _ints(df: pl.DataFrame, name: str, default: int) -> np.ndarray:
    if name not in df.columns:
        return np.full(df.height, default, np.int64)
    return df[name].cast(pl.Int64, strict=True).fill_null(default).to_numpy()


def _as_paths(col: pl.Series) -> list[tuple[int, ...]]:
    if col.dtype == pl.String:
        return [tuple(int(a) for a in (s or "").split()) for s in col.to_list()]
    return [tuple(p) if p is not None else () for p in col.cast(pl.List(pl.Int64)).to_list()]
