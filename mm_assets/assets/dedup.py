"""image_hashes (per shard) and exact_duplicates (global)."""

from dagster import AssetKey, MaterializeResult, asset

from mm_assets.assets._common import (
    Timer,
    bar_plot,
    md_table,
    per_shard,
    read_shard,
    recorded_hashes_rel,
    upstream_shards,
)
from mm_assets.checks import counts_result, counts_spec
from mm_assets.config import dagster_config
from mm_assets.core.dedup.exact import (
    DedupConfig,
    exact_groups,
    group_size_histogram,
    hash_samples,
    reuse_recorded,
)
from mm_assets.core.dedup.near import near_duplicate_groups
from mm_assets.core.records import StageCounts
from mm_assets.core.storage import Store
from mm_assets.partitions import shard_backfill, shards
from resources.storage import StorageResource

HashConfig = dagster_config(DedupConfig, "HashConfig", include=("max_pixels", "workers"))


def hash_shard(shard: str, store: Store, max_pixels: int) -> tuple[StageCounts, dict]:
    """Hash table of one raw shard: the one raw_shards recorded while validating when it
    matches the shard exactly (no decode), else computed here."""
    samples = read_shard(store, "raw_shards", shard)
    table, reused = None, recorded_hashes_rel(shard)
    if store.exists(reused):
        table = reuse_recorded(store.read_parquet(reused), samples, max_pixels)
    recorded = table is not None
    if table is None:
        table = hash_samples(samples, max_pixels)
    store.write_parquet(f"image_hashes/{shard}.parquet", table)
    n_text = table.filter(table["list_hash"].is_null()).height
    return StageCounts(len(samples), table.height), {
        "text_only": n_text, "images": int(table["n_images"].sum()),
        "decoded_here": not recorded}


@asset(partitions_def=shards, backfill_policy=shard_backfill, deps=["raw_shards"],
       group_name="dedup", check_specs=[counts_spec("image_hashes")], kinds={"parquet"})
def image_hashes(context, config: HashConfig, storage: StorageResource) -> MaterializeResult:
    """Per sample: xxh3-128 of each image's bytes and of its normalised pixels, pHash (and the
    pHash of the mirrored image), the hash of the ordered image list (null for text-only)
    and of the normalised text. Reuses the hashes raw_shards computed while validating when
    they match the shard (same bytes, keys, text), so images are decoded once."""
    cfg = config.core()
    return per_shard(context, "image_hashes", hash_shard, storage.store(), cfg.max_pixels,
                     workers=cfg.workers)


ExactDupConfig = dagster_config(DedupConfig, "ExactDupConfig",
                                exclude=("max_pixels", "workers"))


@asset(deps=[AssetKey("image_hashes")], group_name="dedup", kinds={"polars"},
       check_specs=[counts_spec("exact_duplicates")])
def exact_duplicates(context, config: ExactDupConfig, storage: StorageResource
                     ) -> MaterializeResult:
    """Duplicate groups across all shards (image-list groups; identical text-only samples) and
    the policy's action per member (``merge``/``keep_one``/``keep_all``)."""
    store = storage.store()
    cfg = config.core()
    import polars as pl

    with Timer() as t:
        names = upstream_shards(store, "image_hashes", ".parquet")
        hashes = pl.concat([store.read_parquet(f"image_hashes/{s}.parquet") for s in names])
        groups = exact_groups(hashes, cfg.policy)
        hist = group_size_histogram(groups)
        store.write_parquet("exact_duplicates/groups.parquet", groups)
        store.write_parquet("exact_duplicates/group_sizes.parquet", hist)
        near = near_duplicate_groups(hashes, cfg.phash_threshold, cfg.flip_invariant)
        store.write_parquet("exact_duplicates/near_groups.parquet", near)
    removed = groups.filter(pl.col("action") == "remove").height
    counts = StageCounts(hashes.height, hashes.height - removed)
    counts.removed["exact_duplicate"] = removed
    img = hist.filter(pl.col("kind") == "image")
    return MaterializeResult(metadata={
        **counts.as_metadata(), "seconds": t.seconds, "policy": cfg.policy,
        "shards": len(names),
        "groups": groups.select("kind", "group_id").unique().height,
        "samples_in_groups": groups.height,
        "to_merge": groups.filter(pl.col("action") == "merge").height,
        "near_duplicate_groups": near["near_group"].n_unique(),
        "samples_in_near_groups": near.height, "phash_threshold": cfg.phash_threshold,
        "near_grouping": "star (leader)", "flip_invariant": cfg.flip_invariant,
        "group_sizes": md_table(hist),
        "group_size_plot": bar_plot(img["group_size"].to_list(), img["n_groups"].to_list(),
                                    "image duplicate groups by size",
                                    "group size (samples sharing one image list)", "groups"),
    }, check_results=[counts_result(counts)])
