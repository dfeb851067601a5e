"""text_quality (per shard): named formatting flags per turn, with scores and spans."""

from collections import Counter

import polars as pl
from dagster import MaterializeResult, MetadataValue, asset

from mm_assets.assets._common import md_table, per_shard, read_shard
from mm_assets.checks import counts_spec
from mm_assets.config import dagster_config
from mm_assets.core.quality.text_flags import FLAG_SCHEMA, TextQualityConfig, flag_rows
from mm_assets.core.records import StageCounts
from mm_assets.partitions import shard_backfill, shards
from resources.storage import StorageResource

TextQualityAssetConfig = dagster_config(TextQualityConfig, "TextQualityAssetConfig")


def flag_rates(table: pl.DataFrame, n_by_source: Counter) -> pl.DataFrame:
    """Samples flagged per (source, flag) with the rate over that source's samples."""
    per = table.unique(["key", "flag"]).group_by("source", "flag").len("flagged")
    return (per.with_columns(pl.col("source").replace_strict(
        n_by_source, default=0, return_dtype=pl.Int64).alias("samples"))
        .with_columns((pl.col("flagged") / pl.col("samples")).round(4).alias("rate"))
        .sort("source", "flag"))


@asset(partitions_def=shards, backfill_policy=shard_backfill, deps=["raw_shards"],
       group_name="quality", check_specs=[counts_spec("text_quality")], kinds={"polars"})
def text_quality(context, config: TextQualityAssetConfig,
                 storage: StorageResource) -> MaterializeResult:
    """``text_quality/{shard}.parquet``: one row per flag (key, source, flag, turn, score,
    start, end; see :mod:`mm_assets.core.quality.text_flags`). Flags remove nothing here:
    ``curated`` removes the flags its config selects (reason ``text_<flag>``)."""
    store, cfg = storage.store(), config.core()

    def run(shard: str):
        samples = read_shard(store, "raw_shards", shard)
        table = pl.DataFrame(list(flag_rows(samples, cfg)), schema=FLAG_SCHEMA)
        store.write_parquet(f"text_quality/{shard}.parquet", table)
        flagged = table["key"].n_unique()
        rates = flag_rates(table, Counter(s.source for s in samples))
        per_flag = Counter(dict(table.unique(["key", "flag"])["flag"].value_counts().iter_rows()))
        return StageCounts(len(samples), len(samples)), {
            "flagged_samples": flagged, "flags": MetadataValue.json(dict(per_flag)),
            "rates_per_source": md_table(rates), "config": cfg.fingerprint()}

    return per_shard(context, "text_quality", run)
