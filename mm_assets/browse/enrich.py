"""Every decision known about a set of keys, one row per key, from every stage's table.

Each table is streamed once and only the rows of the wanted keys are kept, so memory is the
result (a few rows per key) plus one batch.
"""

from __future__ import annotations

import polars as pl

from mm_assets.browse import _layout as layout
from mm_assets.browse.tables import one_table, rows_for_keys
from mm_assets.core.storage import Store

#: decision columns of a gallery row (and of ``samples.parquet``), with their dtypes
DECISION_SCHEMA = {
    "status": pl.Utf8, "reason": pl.Utf8,
    "exact_kind": pl.Utf8, "exact_group": pl.Utf8, "exact_group_size": pl.Int64,
    "exact_representative": pl.Utf8, "exact_action": pl.Utf8,
    "near_group": pl.Utf8, "near_group_size": pl.Int64,
    "space": pl.Utf8, "cluster": pl.Int64, "distance": pl.Float64,
    "sem_unique": pl.Boolean, "sem_score": pl.Float64, "sem_duplicate": pl.Boolean,
    "sem_partner": pl.Utf8, "sem_partner_duplicate": pl.Boolean, "sem_removes": pl.Utf8,
    "ppl": pl.Float64, "decile": pl.Int64,
    "q_stage": pl.Utf8, "q_reason": pl.Utf8, "q_error": pl.Utf8, "q_location": pl.Utf8,
}


def _pick(store: Store, tables, keys: pl.Series, columns: list[str], rename: dict[str, str],
          on: str = "key") -> pl.DataFrame:
    df = rows_for_keys(store, tables, keys, columns, on=on)
    target = rename.get(on, on)
    if df.height == 0:
        return pl.DataFrame(schema={target: pl.Utf8})
    return df.select([c for c in columns if c in df.columns]).rename(
        {k: v for k, v in rename.items() if k in df.columns}).unique(target, keep="first",
                                                                     maintain_order=True)


def decisions(store: Store, keys: pl.Series) -> pl.DataFrame:
    """One row per key with :data:`DECISION_SCHEMA` (null where a stage has no row or is
    not materialized).

    ``status`` is curated's ``kept``/``removed`` when curated ran, ``quarantined`` for a
    quarantined key; ``sem_partner`` is the earlier-ranked sample the SemDeDup score was
    measured against, ``sem_partner_duplicate`` whether that partner was itself removed, and
    ``sem_removes`` the samples SemDeDup removed against this one (comma-separated).
    """
    keys = keys.unique().cast(pl.Utf8)
    out = pl.DataFrame({"key": keys})
    parts = [
        _pick(store, layout.curated_decision_files(store), keys, ["key", "status", "reason"], {}),
        _pick(store, one_table(layout.exact_groups()), keys,
              ["key", "kind", "group_id", "group_size", "representative", "action"],
              {"kind": "exact_kind", "group_id": "exact_group", "group_size": "exact_group_size",
               "representative": "exact_representative", "action": "exact_action"}),
        _pick(store, one_table(layout.near_groups()), keys,
              ["key", "near_group", "near_group_size"], {}),
        _pick(store, one_table(layout.cluster_assignments()), keys,
              ["key", "space", "cluster", "distance"], {}),
        _pick(store, one_table(layout.semdedup_scores()), keys,
              ["key", "unique", "score", "duplicate", "partner"],
              {"unique": "sem_unique", "score": "sem_score", "duplicate": "sem_duplicate",
               "partner": "sem_partner"}),
        _pick(store, one_table(layout.ppl_deciles()), keys, ["key", "ppl", "decile"], {}),
        _pick(store, layout.quarantine_files(store), keys,
              ["key", "stage", "reason", "error", "location"],
              {"stage": "q_stage", "reason": "q_reason", "error": "q_error",
               "location": "q_location"}),
    ]
    for p in parts:
        if p.width > 1:
            out = out.join(p.cast({c: DECISION_SCHEMA[c] for c in p.columns if c != "key"}),
                           on="key", how="left")
    out = _semdedup_links(store, out)
    for col, dtype in DECISION_SCHEMA.items():
        if col not in out.columns:
            out = out.with_columns(pl.lit(None, dtype).alias(col))
    status = (pl.when(pl.col("q_stage").is_not_null()).then(pl.lit("quarantined"))
              .otherwise(pl.col("status")))
    return out.with_columns(status.alias("status")).select("key", *DECISION_SCHEMA)


def _semdedup_links(store: Store, out: pl.DataFrame) -> pl.DataFrame:
    """Add whether each partner was removed, and what each key caused SemDeDup to remove."""
    if "sem_partner" not in out.columns or not store.exists(layout.semdedup_scores()):
        return out
    partners = out["sem_partner"].drop_nulls()
    pd = _pick(store, one_table(layout.semdedup_scores()), partners, ["key", "duplicate"],
               {"key": "sem_partner", "duplicate": "sem_partner_duplicate"})
    if pd.width > 1:
        out = out.join(pd, on="sem_partner", how="left")
    rem = rows_for_keys(store, one_table(layout.semdedup_scores()), out["key"],
                        ["key", "partner", "duplicate"], on="partner")
    if rem.height:
        rem = (rem.filter("duplicate").group_by("partner").agg(
            pl.col("key").sort().str.join(",").alias("sem_removes"))
            .rename({"partner": "key"}))
        out = out.join(rem, on="key", how="left")
    return out
