"""text_quality (per shard): named formatting flags per turn, with scores and spans."""

from collections import Counter

import polars as pl
from dagster import MaterializeResult, MetadataValue, asset

from mm_assets.assets._common import md_table, per_shard, read_shard
from mm_assets.checks import counts_spec, upstream_spec
from mm_assets.config import dagster_config
from mm_assets.core import layout
from mm_assets.core.quality.text_flags import FLAG_SCHEMA, TextQualityConfig, flag_rows
from mm_assets.core.records import StageCounts
from mm_assets.core.storage import Store
from mm_assets.partitions import shard_backfill, shards
from resources.storage import StorageResource

TextQualityAssetConfig = dagster_config(
    TextQualityConfig, "TextQualityAssetConfig",
    extra={"workers": (int, 0, "worker processes for a batched run's shards (0 = one per core)")})


def flag_rates(table: pl.DataFrame, n_by_source: Counter) -> pl.DataFrame:
    """Samples flagged per (source, flag) with the rate over that source's samples."""
    per = table.unique(["key", "flag"]).group_by("source", "flag").len("flagged")
    return (per.with_columns(pl.col("source").replace_strict(
        n_by_source, default=0, return_dtype=pl.Int64).alias("samples"))
        .with_columns((pl.col("flagged") / pl.col("samples")).round(4).alias("rate"))
        .sort("source", "flag"))


def flag_shard(shard: str, store: Store, cfg: TextQualityConfig):
    """Flag one raw shard into ``text_quality/{shard}.parquet`` (a worker-process function)."""
    samples = read_shard(store, layout.RAW_SHARDS, shard)
    examined = Counter()

    def counted(items):  # out = samples the flagger examined (flagged or clean)
        for s in items:
            examined["n"] += 1
            yield s

    table = pl.DataFrame(list(flag_rows(counted(samples), cfg)), schema=FLAG_SCHEMA)
    store.write_table(layout.text_quality(shard), table, FLAG_SCHEMA)
    rates = flag_rates(table, Counter(s.source for s in samples))
    per_flag = dict(table.unique(["key", "flag"])["flag"].value_counts().iter_rows())
    return StageCounts(len(samples), examined["n"]), {
        "flagged_samples": table["key"].n_unique(), "flags": MetadataValue.json(per_flag),
        "rates_per_source": md_table(rates), "config": cfg.fingerprint()}


@asset(partitions_def=shards, backfill_policy=shard_backfill, deps=["raw_shards"],
       group_name="quality",
       check_specs=[counts_spec("text_quality"), upstream_spec("text_quality")],
       kinds={"polars"})
def text_quality(context, config: TextQualityAssetConfig,
                 storage: StorageResource) -> MaterializeResult:
    """``text_quality/{shard}.parquet``: one row per flag (key, source, flag, turn, score,
    start, end; see :mod:`mm_assets.core.quality.text_flags`). Flags remove nothing here:
    ``curated`` removes the flags its config selects (reason ``text_<flag>``). A batched run's
    shards are flagged in ``workers`` processes (0 = one per core)."""
    return per_shard(context, "text_quality", flag_shard, storage.store(), config.core(),
                     workers=config.workers, upstream="raw_shards")
