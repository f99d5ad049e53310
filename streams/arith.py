"""Sums that cannot wrap around.

Flow bytes and packets are UInt64, and polars sums UInt64 modulo 2^64 without a word: a few
implausible flows (the collector refuses them, but an older collector or another producer
may not) then turn a link's bytes into a small or a random number. Here a sum that would
pass 2^64 saturates at 2^64 - 1 instead, which downstream reads as "absurdly large", never
as "small". The check is a float64 sum beside the exact one (columnar, no Python per row).
"""

from __future__ import annotations

import polars as pl

U64_MAX = 2**64 - 1
_NEAR_U64 = float(2**64) * (1 - 1e-6)
"""A float64 sum of up to ~1e9 terms is within 1e-6 of the true one: below this, the exact
UInt64 sum did not wrap."""


def sum_u64(name: str) -> pl.Expr:
    """``pl.col(name).sum()`` as UInt64, saturating at :data:`U64_MAX` (aggregation context)."""
    col = pl.col(name).cast(pl.UInt64)
    return (
        pl.when(col.cast(pl.Float64).sum() >= _NEAR_U64)
        .then(pl.lit(U64_MAX, pl.UInt64))
        .otherwise(col.sum())
        .alias(name)
    )
