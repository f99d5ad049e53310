"""Saturating UInt64 sums: exact below 2^64, 2^64 - 1 (never a wrapped small number) above."""

from __future__ import annotations

import polars as pl

from streams.arith import U64_MAX, sum_u64


def _sums(values: list[int], groups: list[int]) -> dict[int, int]:
    df = pl.DataFrame({"g": groups, "x": values}, schema={"g": pl.Int64, "x": pl.UInt64})
    out = df.group_by("g").agg(sum_u64("x"))
    assert out.schema["x"] == pl.UInt64
    return dict(out.iter_rows())


def test_exact_below_the_limit_and_saturated_above() -> None:
    big = 1 << 63
    assert _sums([big, big, 3, 4, U64_MAX - 1, 1], [1, 1, 2, 2, 3, 3]) == {1: U64_MAX, 2: 7, 3: U64_MAX}
    # wrapping would have given 0 for group 1 and 0 for group 3
    assert _sums([U64_MAX - 10, 10], [1, 1]) == {1: U64_MAX}
    # large sums that fit are exact to the unit (not rounded through float64) ...
    assert _sums([(1 << 62) + 1, 1 << 62, 1], [1, 1, 1]) == {1: (1 << 63) + 2}
    assert _sums([(1 << 63) + 7, (1 << 62) + 1], [1, 1]) == {1: (1 << 63) + (1 << 62) + 8}
    # ... up to within 1e-6 of 2^64, where a float64 sum can no longer tell: saturated
    assert _sums([U64_MAX - (1 << 20), 1], [1, 1]) == {1: U64_MAX}


def test_many_terms_that_together_pass_2_to_64() -> None:
    n = 20_000
    assert _sums([1 << 50] * n, [1] * n) == {1: U64_MAX}  # 20,000 x 2^50 = 2^64 x 1.2
    assert _sums([1 << 45] * n, [1] * n) == {1: n << 45}  # exact
