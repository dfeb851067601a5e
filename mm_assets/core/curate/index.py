"""Per-shard decision inputs, so a curated run reads only the rows of its shard.

The corpus-wide tables curated decides from (exact-duplicate groups, SemDeDup scores, perplexity
deciles) are split by shard once, in one polars pass, into ``{index_dir}/{shard}.parquet``
(:data:`INDEX_SCHEMA`: the shard's keys with their exact-dedup action, whether SemDeDup removes
them — extended to every member of an exact group whose representative it removes — and their
decile). The folder is named by a fingerprint of the three tables (size and modification time or
ETag, never their contents), so a re-materialized table gets a new index and every later run
reads one small file: per-run cost no longer grows with the corpus.

Memory model: building holds the three tables plus a key→shard table (≈ 100 B per sample in
polars; done once per fingerprint, not per run); a run holds its shard's rows only.
"""

from __future__ import annotations

import json

import polars as pl
import xxhash

from mm_assets.core import schemas
from mm_assets.core.storage import Store

INDEX_SCHEMA = schemas.CURATED_INDEX


def tables_fingerprint(store: Store, rels: list[str]) -> str:
    """16 hex chars from each table's size and mtime/ETag (no read of the contents)."""
    parts = []
    for rel in rels:
        info = store.fs.info(store.path(rel))
        parts.append([rel, info.get("size"), str(info.get("ETag") or info.get("mtime")
                                                or info.get("LastModified"))])
    return xxhash.xxh3_64_hexdigest(json.dumps(parts).encode())


def semantic_duplicate_keys(scores: pl.DataFrame, groups: pl.DataFrame) -> pl.DataFrame:
    """``key`` of every sample SemDeDup removes, extended to the members of an exact group
    whose representative it removes (the group is one unique image)."""
    dup = scores.filter(pl.col("duplicate")).select("key")
    hit = groups.join(dup, left_on="representative", right_on="key", how="semi").select("key")
    return pl.concat([dup, hit]).unique()


def build_index(key_shard: pl.DataFrame, groups: pl.DataFrame, scores: pl.DataFrame,
                deciles: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """Split the decision inputs by shard.

    Args:
        key_shard: ``key, shard`` for every sample of the corpus.
        groups: exact-duplicate groups (``key, representative, action``).
        scores: SemDeDup table (``key, duplicate``).
        deciles: ``key, decile``.

    Returns:
        ``shard -> DataFrame`` (:data:`INDEX_SCHEMA`), one entry per shard of ``key_shard``.
    """
    sem = semantic_duplicate_keys(scores, groups).with_columns(pl.lit(True).alias("semdup"))
    idx = (key_shard.join(groups.select("key", "action"), on="key", how="left")
           .join(sem, on="key", how="left")
           .join(deciles.select("key", pl.col("decile").cast(pl.Int32)), on="key", how="left")
           .with_columns(pl.col("semdup").fill_null(False)))
    parts = idx.partition_by("shard", as_dict=True, include_key=False, maintain_order=True)
    return {k[0]: v.select(list(INDEX_SCHEMA)).cast(INDEX_SCHEMA) for k, v in parts.items()}


def decision_inputs(part: pl.DataFrame) -> tuple[pl.DataFrame, set[str], dict[str, int]]:
    """What :func:`~mm_assets.core.curate.decide.decide` takes, from one shard's index rows:
    ``(exact rows (key, action), semdedup keys, key -> decile)``."""
    exact = part.filter(pl.col("action").is_not_null()).select("key", "action")
    semdup = set(part.filter(pl.col("semdup"))["key"].to_list())
    dec = part.filter(pl.col("decile").is_not_null())
    return exact, semdup, dict(zip(dec["key"].to_list(), dec["decile"].to_list(), strict=True))
