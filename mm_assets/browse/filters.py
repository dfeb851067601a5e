"""Filters of a gallery view (``--reason``, ``--cluster``/``--space``, ``--decile``,
``--source``, ``--flag``, shards): an expression on the driver table's own columns, or a key
set read from the filter's own table (memory: the matching keys), and the removed/quarantined
samples (with their reason) that the ``removed`` view and the ``reason`` filter read.
"""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl

from mm_assets.browse import _layout as layout
from mm_assets.browse.flags import flag_tables
from mm_assets.browse.spec import SampleSpec
from mm_assets.browse.tables import iter_frames, key_tables, one_table
from mm_assets.core.storage import Store


def removed_frames(store: Store, spec: SampleSpec) -> Iterator[pl.DataFrame]:
    """Removed (curated decisions; or semdedup/exact tables when asked by reason or before
    curated exists) and quarantined samples, with ``reason`` and ``section``."""
    r = spec.reason
    decisions = layout.curated_decision_files(store)
    if r == "semdedup" or (r is None and not decisions):
        for df in iter_frames(store, one_table(layout.semdedup_scores()), ["key", "duplicate"]):
            yield df.filter("duplicate").select("key", pl.lit("semdedup").alias("reason"))
    if r == "exact_duplicate" or (r is None and not decisions):
        for df in iter_frames(store, one_table(layout.exact_groups()), ["key", "action"]):
            yield df.filter(pl.col("action") == "remove").select(
                "key", pl.lit("exact_duplicate").alias("reason"))
    if r not in ("semdedup", "exact_duplicate"):
        for df in iter_frames(store, decisions, ["key", "status", "reason"]):
            df = df.filter(pl.col("status") == "removed")
            yield df.filter(pl.col("reason") == r) if r else df
    for df in iter_frames(store, layout.quarantine_files(store), ["key", "stage", "reason"]):
        yield df.filter(pl.col("reason") == r) if r else df


def filters(store: Store, spec: SampleSpec, columns: list[str]) -> tuple[list[pl.Expr],
                                                                         pl.Series | None]:
    """Filter expressions on the driver's own columns, and the key set of the others."""
    wanted = {"cluster": spec.cluster, "space": spec.space, "decile": spec.decile,
              "source": spec.source if spec.view != "synthetic" else None,
              "reason": spec.reason, "flag": spec.flag}
    exprs, sets = [], []
    for col, val in wanted.items():
        if val is None:
            continue
        if col in columns:
            exprs.append(pl.col(col) == val)
        elif col in ("cluster", "space") and not sets_has(sets, "cluster"):
            pred = [pl.col(c) == wanted[c] for c in ("cluster", "space") if wanted[c] is not None]
            sets.append(("cluster", keys_where(store, one_table(layout.cluster_assignments()), pred,
                                          ["key", "cluster", "space"])))
        elif col == "decile":
            sets.append(("decile", keys_where(store, one_table(layout.ppl_deciles()),
                                         [pl.col("decile") == val],
                                         ["key", "decile"])))
        elif col == "source":
            tables = (one_table(layout.ppl_deciles()) if store.exists(layout.ppl_deciles())
                      else key_tables(store, spec.shards))
            sets.append(("source", keys_where(store, tables, [pl.col("source") == val],
                                         ["key", "source"])))
        elif col == "flag":
            sets.append(("flag", keys_where(store, flag_tables(store, spec.shards),
                                       [pl.col("flag") == val], ["key", "flag"]).unique()))
        elif col == "reason":
            frames = list(removed_frames(store, spec))
            sets.append(("reason", pl.concat([f.select("key") for f in frames])["key"]
                         if frames else pl.Series("key", [], pl.Utf8)))
    if spec.shards is not None and "shard" not in columns and spec.view != "synthetic":
        sets.append(("shards", keys_where(store, key_tables(store, spec.shards), [], ["key"])))
    keyset = None
    for _, s in sets:
        keyset = s if keyset is None else keyset.filter(keyset.is_in(s))
    return exprs, keyset


def sets_has(sets: list, name: str) -> bool:
    return any(n == name for n, _ in sets)


def keys_where(store: Store, tables, pred: list[pl.Expr], columns: list[str]) -> pl.Series:
    """Keys of ``tables`` rows matching every predicate (memory: the matching keys)."""
    parts = [df.filter(*pred)["key"] if pred else df["key"]
             for df in iter_frames(store, tables, columns)]
    return pl.concat(parts) if parts else pl.Series("key", [], pl.Utf8)


def restrict(df: pl.DataFrame, exprs: list[pl.Expr], keyset: pl.Series | None,
              spec: SampleSpec) -> pl.DataFrame:
    if exprs:
        df = df.filter(*exprs)
    if keyset is not None:
        df = df.filter(pl.col("key").is_in(keyset))
    if spec.shards is not None and "shard" in df.columns:
        df = df.filter(pl.col("shard").is_in(list(spec.shards)))
    return df
