"""Versioned, idempotent schema migrations: an ordered list of check-then-apply steps.

Each step asks the database whether it is needed (does the table exist, is a column
missing, does the TTL differ from the configured retention) and applies itself only then,
like akvorado's orchestrator/clickhouse/migrations.go. So a second run changes nothing, a
half-finished run resumes where it stopped, and a changed retention becomes one
``ALTER ... MODIFY TTL``. Applied steps are recorded in ``<db>.schema_migrations`` for
humans; the checks never trust that record, only the live schema.

Why not a migration tool: the schema is derived from the wire schemas at run time, steps
must run the same on chDB and on a server, and check-then-apply needs no lock or version
table to be correct.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from netpilot.errors import NetpilotError
from sinks.clickhouse import schema
from sinks.clickhouse.client import ClickHouseClient
from sinks.clickhouse.settings import Retention

SCHEMA_VERSION = 4
"""Bumped when a step is added; shown by ``migrate`` and stored with each applied step.
2: the rollup views cascade. 3: ``autopilot_applied`` (applied-override/1), created by its
``table:`` step next to the existing tables, whose data it leaves alone. 4:
``flow_aggregates`` becomes a ReplacingMergeTree on the full window key (republished
windows counted once), rebuilt with its rows by the ``engine:`` step."""

REBUILD_SUFFIX = "__rebuild"
"""The copy an ``engine:`` step builds before swapping it in (and then drops)."""


class MigrationError(NetpilotError):
    """A step found the database in a state it must not change blindly."""


@dataclass(frozen=True)
class Step:
    id: str
    description: str
    needed: Callable[[ClickHouseClient], bool]
    apply: Callable[[ClickHouseClient], object]
    """Makes the change (its return value is ignored)."""


def _exists(db: str, name: str) -> Callable[[ClickHouseClient], bool]:
    def needed(c: ClickHouseClient) -> bool:
        return not c.rows(
            "SELECT 1 FROM system.tables WHERE database = {db:String} AND name = {name:String}",
            {"db": db, "name": name},
        )

    return needed


def _missing_columns(c: ClickHouseClient, db: str, table: schema.Table) -> list[schema.Column]:
    have = {
        r[0]
        for r in c.rows(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String}",
            {"db": db, "t": table.name},
        )
    }
    return [col for col in table.columns if col.name not in have]


_TTL_DAYS = re.compile(r"\bTTL\b.*?toIntervalDay\((\d+)\)", re.S)


def current_ttl_days(c: ClickHouseClient, db: str, table: str) -> int | None:
    rows = c.rows(
        "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": db, "t": table},
    )
    if not rows:
        return None
    m = _TTL_DAYS.search(rows[0][0])
    return int(m.group(1)) if m else None


def steps(db: str, retention: Retention, dedup_window: int) -> list[Step]:
    out = [
        Step(
            "database",
            f"create database {db}",
            lambda c: not c.rows("SELECT 1 FROM system.databases WHERE name = {db:String}", {"db": db}),
            lambda c: c.command(f"CREATE DATABASE IF NOT EXISTS {db}"),
        )
    ]
    mt = schema.MIGRATIONS_TABLE
    out.append(
        Step(
            f"table:{mt.name}",
            "history of applied steps",
            _exists(db, mt.name),
            lambda c: c.command(mt.create_sql(db, dedup_window)),
        )
    )
    # tables a view reads or writes: a rebuild would need their views recreated too
    viewed = {v.target for v in schema.views()} | {v.source for v in schema.views()}
    for t in schema.tables(retention):
        out += _table_steps(db, t, dedup_window, rebuild=t.name not in viewed)
    for v in schema.views():
        out += _view_steps(db, v)
    return out


def _table_steps(db: str, t: schema.Table, dedup_window: int, rebuild: bool) -> list[Step]:
    out = [
        Step(
            f"table:{t.name}",
            f"create {t.engine} {t.name}",
            _exists(db, t.name),
            lambda c: c.command(t.create_sql(db, dedup_window)),
        )
    ]
    if rebuild:
        # before the column steps: the copy gets every column of the current schema
        out.append(
            Step(
                f"engine:{t.name}",
                f"rebuild {t.name} as {t.engine} ORDER BY ({t.order_by}), keeping its rows",
                lambda c: _engine_differs(c, db, t) or _has_leftover(c, db, t),
                lambda c: _rebuild(c, db, t, dedup_window),
            )
        )
    # Minor wire versions add columns: add them to existing tables (never drop).
    out.append(
        Step(
            f"columns:{t.name}",
            f"add missing columns to {t.name}",
            lambda c: bool(_missing_columns(c, db, t)),
            lambda c: [
                c.command(f"ALTER TABLE {db}.{t.name} ADD COLUMN IF NOT EXISTS {col.ddl()}")
                for col in _missing_columns(c, db, t)
            ],
        )
    )
    if t.ttl_days is not None:
        out.append(
            Step(
                f"ttl:{t.name}",
                f"TTL of {t.name} = {t.ttl_days} days",
                lambda c: current_ttl_days(c, db, t.name) != t.ttl_days,
                lambda c: c.command(f"ALTER TABLE {db}.{t.name} MODIFY TTL {t.ttl_expr()}"),
            )
        )
    out.append(
        Step(
            f"dedup:{t.name}",
            f"dedup window of {t.name} = {dedup_window} blocks",
            lambda c: _dedup_window(c, db, t.name) != dedup_window,
            lambda c: c.command(
                f"ALTER TABLE {db}.{t.name} MODIFY SETTING non_replicated_deduplication_window = {dedup_window}"
            ),
        )
    )
    return out


def _view_steps(db: str, v: schema.View) -> list[Step]:
    return [
        Step(
            f"view-source:{v.name}",
            f"recreate {v.name} if it reads another table than {v.source}",
            lambda c: _view_source(c, db, v.name) not in (None, v.source),
            lambda c: c.command(f"DROP VIEW IF EXISTS {db}.{v.name}"),
        ),
        Step(
            f"view:{v.name}",
            f"materialized view {v.name} -> {v.target}",
            _exists(db, v.name),
            lambda c: c.command(v.create_sql(db)),
        ),
    ]


def _view_source(c: ClickHouseClient, db: str, view: str) -> str | None:
    """The table an existing materialized view reads (None: no such view). Before schema 2
    every rollup read flows_raw; from 2 they cascade, and the old ones are recreated (an
    insert landing between the drop and the create would miss that rollup: migrate before
    the sinks start, as ``sink clickhouse run`` does)."""
    rows = c.rows(
        "SELECT create_table_query FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": db, "t": view},
    )
    if not rows:
        return None
    m = re.search(r"\bFROM\s+`?" + re.escape(db) + r"`?\.`?(\w+)`?", rows[0][0])
    return m.group(1) if m else ""


def _dedup_window(c: ClickHouseClient, db: str, table: str) -> int | None:
    rows = c.rows(
        "SELECT engine_full FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": db, "t": table},
    )
    m = re.search(r"non_replicated_deduplication_window = (\d+)", rows[0][0]) if rows else None
    return int(m.group(1)) if m else None


def _normalized(sql: str) -> str:
    return re.sub(r"[\s`]", "", sql)


def _engine_differs(c: ClickHouseClient, db: str, t: schema.Table) -> bool:
    """Whether the live table has another engine (or engine parameters) or sort key than
    the schema's: neither can be ALTERed, the table must be rebuilt."""
    rows = c.rows(
        "SELECT engine_full, sorting_key FROM system.tables WHERE database = {db:String} AND name = {t:String}",
        {"db": db, "t": t.name},
    )
    if not rows:
        return False  # the table: step creates it
    engine_full, sorting_key = rows[0]
    # engine_full is "<engine>[(<params>)] [PARTITION BY ...] ORDER BY ... SETTINGS ..."
    live_engine = re.split(r"\s+(?:PARTITION BY|PRIMARY KEY|ORDER BY)\s", engine_full, maxsplit=1)[0]
    return _normalized(live_engine) != _normalized(t.engine) or _normalized(sorting_key) != _normalized(t.order_by)


def _has_leftover(c: ClickHouseClient, db: str, t: schema.Table) -> bool:
    return not _exists(db, t.name + REBUILD_SUFFIX)(c)


def _rebuild(c: ClickHouseClient, db: str, t: schema.Table, dedup_window: int) -> None:
    """Rebuild ``t`` with the schema's engine and sort key, keeping every row.

    The live table is only replaced once the copy holds as many rows as it does, by one
    atomic ``EXCHANGE TABLES`` (Atomic databases, the default on servers and in chDB); the
    old table is dropped after. A run interrupted before the exchange leaves the live table
    as it was and a half-made copy, which the next run drops and makes again; one
    interrupted after it leaves the old table under the copy's name, which the next run
    drops (the live table already matches). Rows inserted during the copy would be lost:
    migrate before the sinks start, as ``sink clickhouse run`` does. The copy carries no
    insert-token history, so a batch replayed just after the rebuild is stored again; a
    table that needs a rebuild to deduplicate (flow_aggregates) merges such a repeat
    away by its key anyway.
    """
    live, copy = f"{db}.{t.name}", f"{db}.{t.name}{REBUILD_SUFFIX}"
    c.command(f"DROP TABLE IF EXISTS {copy}")
    if not _engine_differs(c, db, t):
        return  # the exchange happened: what was left under the copy's name is the old table
    c.command(t.create_sql(db, dedup_window, name=t.name + REBUILD_SUFFIX))
    have = {
        r[0]
        for r in c.rows(
            "SELECT name FROM system.columns WHERE database = {db:String} AND table = {t:String} "
            "AND default_kind NOT IN ('MATERIALIZED', 'ALIAS', 'EPHEMERAL')",
            {"db": db, "t": t.name},
        )
    }
    # columns the old table lacks take their defaults (the column step would add them)
    cols = ", ".join(f"`{col.name}`" for col in t.columns if col.materialized is None and col.name in have)
    # no merges in the copy until it is counted: a ReplacingMergeTree merge would make it
    # smaller than the source, which is the point of it but not a sign of a lost row
    c.command(f"SYSTEM STOP MERGES {copy}")
    try:
        # a plain copy: no insert dedup (two identical blocks of the old table are two
        # parts to keep) and no merging of one block's rows as it is written
        c.command(
            f"INSERT INTO {copy} ({cols}) SELECT {cols} FROM {live} "
            "SETTINGS insert_deduplicate = 0, optimize_on_insert = 0"
        )
        [(source,)] = c.rows(f"SELECT count() FROM {live}")
        [(copied,)] = c.rows(f"SELECT count() FROM {copy}")
        if copied != source:
            raise MigrationError(f"rebuilding {live}: copied {copied} of its {source} rows; nothing swapped")
        c.command(f"EXCHANGE TABLES {live} AND {copy}")
    finally:
        c.command(f"SYSTEM START MERGES {live}")
        c.command(f"SYSTEM START MERGES {copy}")
    c.command(f"DROP TABLE {copy}")


@dataclass(frozen=True)
class MigrationReport:
    applied: tuple[str, ...]
    skipped: tuple[str, ...]

    @property
    def changed(self) -> bool:
        return bool(self.applied)


def migrate(
    client: ClickHouseClient, db: str, retention: Retention, dedup_window: int, dry_run: bool = False
) -> MigrationReport:
    """Apply every needed step in order; with ``dry_run`` only report which are needed."""
    applied: list[str] = []
    skipped: list[str] = []
    for step in steps(db, retention, dedup_window):
        if not step.needed(client):
            skipped.append(step.id)
            continue
        if dry_run:
            applied.append(step.id)
            continue
        step.apply(client)
        applied.append(step.id)
        if step.id != "database":
            client.command(
                f"INSERT INTO {db}.{schema.MIGRATIONS_TABLE.name} VALUES "
                f"('{step.id}', 'v{SCHEMA_VERSION}: {_quote(step.description)}', now())"
            )
    return MigrationReport(tuple(applied), tuple(skipped))


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")
