"""curated (per shard): dedup and quality decisions applied, every removal with its reason."""

import polars as pl
from dagster import AutomationCondition, MaterializeResult, asset

from mm_assets.assets._common import per_shard, read_shard, shard_rel, write_shard
from mm_assets.checks import counts_spec
from mm_assets.config import dagster_config
from mm_assets.core.curate.decide import CurateConfig, apply, decide
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


def semantic_duplicates(store: Store) -> set[str]:
    """Keys SemDeDup removes, extended to every member of an exact group whose representative
    it removes (the group is one unique image)."""
    scores = store.read_parquet("semdedup/scores.parquet")
    dup = set(scores.filter(pl.col("duplicate"))["key"].to_list())
    groups = store.read_parquet("exact_duplicates/groups.parquet")
    hit = groups.filter(pl.col("representative").is_in(list(dup)))
    return dup | set(hit["key"].to_list())


@asset(partitions_def=shards, backfill_policy=shard_backfill,
       deps=["raw_shards", "exact_duplicates", "semdedup", "ppl_deciles", "text_quality"], group_name="curate",
       check_specs=[counts_spec("curated")], kinds={"webdataset"},
       automation_condition=AutomationCondition.on_cron(CURATE_CRON))
def curated(context, config: CuratedConfig, storage: StorageResource) -> MaterializeResult:
    """``curated/{shard}.tar`` (kept samples, with ``ppl_decile`` in metadata) and
    ``curated/{shard}.decisions.parquet`` (every key: kept / removed + reason)."""
    store, cfg = storage.store(), config.core()
    exact = store.read_parquet("exact_duplicates/groups.parquet")
    semdup = semantic_duplicates(store)
    dec = store.read_parquet("ppl_deciles/deciles.parquet")
    deciles = dict(zip(dec["key"].to_list(), dec["decile"].to_list(), strict=True))

    def run(shard: str):
        samples = read_shard(store, "raw_shards", shard)
        keys = [s.key for s in samples]
        decisions = decide(keys, exact.filter(pl.col("key").is_in(keys)), semdup, deciles, cfg,
                           shard_text_flags(store, shard))
        kept, counts = apply(samples, decisions)
        for s in kept:
            s.metadata["ppl_decile"] = int(deciles.get(s.key, -1))
        store.write_parquet(f"curated/{shard}.decisions.parquet", decisions)
        write_shard(store, shard_rel("curated", shard), kept)
        return counts, {"path": store.url(shard_rel("curated", shard)),
                        "text_filters": ", ".join(cfg.text_filters)}

    return per_shard(context, "curated", run)
