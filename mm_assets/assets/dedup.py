"""image_hashes (per shard) and exact_duplicates (global)."""

from dagster import AssetKey, MaterializeResult, asset

from mm_assets.assets._common import (
    Timer,
    bar_plot,
    global_result,
    md_table,
    per_shard,
    read_shard,
    upstream_shards,
)
from mm_assets.checks import counts_spec, upstream_spec
from mm_assets.config import dagster_config
from mm_assets.core import layout, schemas
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

EXACT_GROUPS = layout.EXACT_GROUPS
EXACT_NEAR = layout.NEAR_GROUPS
HashConfig = dagster_config(DedupConfig, "HashConfig", include=("max_pixels", "workers"))


def hash_shard(shard: str, store: Store, max_pixels: int) -> tuple[StageCounts, dict]:
    """Hash table of one raw shard: the one raw_shards recorded while validating when it
    matches the shard exactly (no decode), else computed here."""
    samples = read_shard(store, layout.RAW_SHARDS, shard)
    table, reused = None, layout.recorded_hashes(shard)
    if store.exists(reused):  # read unchecked: a table not matching HASH_SCHEMA is recomputed
        table = reuse_recorded(store.read_parquet(reused), samples, max_pixels)
    recorded = table is not None
    if table is None:
        table = hash_samples(samples, max_pixels)
    store.write_table(layout.image_hashes(shard), table, schemas.IMAGE_HASHES)
    n_text = table.filter(table["list_hash"].is_null()).height
    return StageCounts(len(samples), table.height), {
        "text_only": n_text, "images": int(table["n_images"].sum()),
        "decoded_here": not recorded}


@asset(partitions_def=shards, backfill_policy=shard_backfill, deps=["raw_shards"],
       group_name="dedup", check_specs=[counts_spec("image_hashes"), upstream_spec("image_hashes")],
       kinds={"parquet"})
def image_hashes(context, config: HashConfig, storage: StorageResource) -> MaterializeResult:
    """Per sample: xxh3-128 of each image's bytes and of its normalised pixels, pHash (and the
    pHash of the mirrored image), the hash of the ordered image list (null for text-only)
    and of the normalised text. Reuses the hashes raw_shards computed while validating when
    they match the shard (same bytes, keys, text), so images are decoded once."""
    cfg = config.core()
    return per_shard(context, "image_hashes", hash_shard, storage.store(), cfg.max_pixels,
                     workers=cfg.workers, upstream="raw_shards")


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
        names = upstream_shards(store, "image_hashes")
        hashes = pl.concat([store.read_table(layout.image_hashes(s), schemas.IMAGE_HASHES)
                            for s in names])
        groups = exact_groups(hashes, cfg.policy)
        hist = group_size_histogram(groups)
        store.write_table(layout.EXACT_GROUPS, groups, schemas.EXACT_GROUPS)
        store.write_table(layout.EXACT_GROUP_SIZES, hist, schemas.EXACT_GROUP_SIZES)
        near = near_duplicate_groups(hashes, cfg.phash_threshold, cfg.flip_invariant)
        store.write_table(layout.NEAR_GROUPS, near, schemas.NEAR_GROUPS)
    removed = groups.filter(pl.col("action") == "remove").select("key")
    # counted from the decisions: kept = read rows not removed by an exact-duplicate group
    counts = StageCounts(hashes.height, hashes.join(removed, on="key", how="anti").height)
    counts.removed["exact_duplicate"] = removed.height
    img = hist.filter(pl.col("kind") == "image")
    return global_result(store, "exact_duplicates", counts, [EXACT_GROUPS, EXACT_NEAR], {
        "seconds": t.seconds, "policy": cfg.policy,
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
    })
