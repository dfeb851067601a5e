"""curated (per shard): dedup and quality decisions applied, every removal with its reason."""

import polars as pl
from dagster import AutomationCondition, MaterializeResult, asset

from mm_assets.assets._common import (
    per_shard,
    read_shard,
    shard_rel,
    upstream_shards,
    write_shard,
)
from mm_assets.checks import counts_spec
from mm_assets.config import dagster_config
from mm_assets.core.curate.decide import CurateConfig, apply, decide
from mm_assets.core.curate.index import build_index, decision_inputs, tables_fingerprint
from mm_assets.core.storage import Store
from mm_assets.partitions import CURATE_CRON, shard_backfill, shards
from resources.storage import StorageResource

CuratedConfig = dagster_config(CurateConfig, "CuratedConfig")


def shard_text_flags(store: Store, shard: str) -> dict[str, set[str]]:
    """key -> text-quality flags of one shard (empty when text_quality was not materialized)."""
    rel = f"text_quality/{shard}.parquet"
    if not store.exists(rel):
        return {}
    table = store.read_parquet(rel).group_by("key").agg(pl.col("flag").unique())
    return {k: set(v) for k, v in table.iter_rows()}


TABLES = ["exact_duplicates/groups.parquet", "semdedup/scores.parquet",
          "ppl_deciles/deciles.parquet"]


def shard_index(store: Store):
    """``shard -> its decision inputs`` read from the per-shard index of the global tables,
    built once per version of those tables (:mod:`mm_assets.core.curate.index`)."""
    folder = f"curated/_index/{tables_fingerprint(store, TABLES)}"

    def build() -> None:
        names = upstream_shards(store, "image_hashes", ".parquet")
        key_shard = pl.concat([store.read_parquet(f"image_hashes/{s}.parquet").select(
            "key", pl.lit(s).alias("shard")) for s in names])
        groups, scores, dec = (store.read_parquet(t) for t in TABLES)
        for shard, part in build_index(key_shard, groups, scores, dec).items():
            store.write_parquet(f"{folder}/{shard}.parquet", part)

    def part(shard: str):
        rel = f"{folder}/{shard}.parquet"
        if not store.exists(rel):
            build()
        if not store.exists(rel):
            raise FileNotFoundError(f"no image_hashes for shard {shard}: materialize it first")
        return decision_inputs(store.read_parquet(rel))

    return part


@asset(partitions_def=shards, backfill_policy=shard_backfill,
       deps=["raw_shards", "exact_duplicates", "semdedup", "ppl_deciles", "text_quality"], group_name="curate",
       check_specs=[counts_spec("curated")], kinds={"webdataset"},
       automation_condition=AutomationCondition.on_cron(CURATE_CRON))
def curated(context, config: CuratedConfig, storage: StorageResource) -> MaterializeResult:
    """``curated/{shard}.tar`` (kept samples, with ``ppl_decile`` in metadata) and
    ``curated/{shard}.decisions.parquet`` (every key: kept / removed + reason). Reads only
    its shard's rows of the global tables (``curated/_index/{tables fingerprint}/{shard}``,
    built by the first run after those tables change), so a run's cost is flat in corpus size."""
    store, cfg = storage.store(), config.core()
    index = shard_index(store)

    def run(shard: str):
        samples = read_shard(store, "raw_shards", shard)
        exact, semdup, deciles = index(shard)
        decisions = decide([s.key for s in samples], exact, semdup, deciles, cfg,
                           shard_text_flags(store, shard))
        kept, counts = apply(samples, decisions)
        for s in kept:
            s.metadata["ppl_decile"] = int(deciles.get(s.key, -1))
        store.write_parquet(f"curated/{shard}.decisions.parquet", decisions)
        write_shard(store, shard_rel("curated", shard), kept)
        return counts, {"path": store.url(shard_rel("curated", shard)),
                        "text_filters": ", ".join(cfg.text_filters)}

    return per_shard(context, "curated", run)
