"""raw_shards: one canonical WebDataset shard per ingest manifest."""

from collections import Counter

from dagster import MaterializeResult, asset

from mm_assets.assets._common import (
    per_shard,
    write_quarantine,
    write_shard,
)
from mm_assets.checks import counts_spec
from mm_assets.config import dagster_config
from mm_assets.core import layout, schemas
from mm_assets.core.dedup.exact import hash_table
from mm_assets.core.ingest.plan import read_manifest
from mm_assets.core.ingest.rawshard import RawShardConfig, build_samples
from mm_assets.core.records import StageCounts
from mm_assets.core.storage import Store
from mm_assets.partitions import shard_backfill, shards
from resources.storage import StorageResource

RawShardsConfig = dagster_config(RawShardConfig, "RawShardsConfig")


def raw_shard(shard: str, store: Store, cfg: RawShardConfig) -> tuple[StageCounts, dict]:
    """Build one raw shard, its quarantine table and the image hashes of its samples
    (computed by the decode that validates each image)."""
    header, records = read_manifest(store, shard)
    quarantine: list = []
    hash_rows: list[dict] = []
    rel = layout.raw_shard(shard)
    n_out = write_shard(store, rel, build_samples(header, records, cfg, quarantine, hash_rows))
    store.write_table(layout.recorded_hashes(shard), hash_table(hash_rows), schemas.IMAGE_HASHES)
    write_quarantine(store, "raw_shards", shard, quarantine)
    n_in = len(records) if header["kind"] == "records" else n_out + len(quarantine)
    counts = StageCounts(n_in, n_out, quarantined=Counter(q.reason for q in quarantine))
    return counts, {"path": store.url(rel), "input": header["input"]}


@asset(partitions_def=shards, backfill_policy=shard_backfill, group_name="ingest",
       check_specs=[counts_spec("raw_shards")], kinds={"webdataset"})
def raw_shards(context, config: RawShardsConfig, storage: StorageResource) -> MaterializeResult:
    """Canonical WebDataset shard (``raw_shards/{shard}.tar``) with images validated; unusable
    records go to ``quarantine/raw_shards/{shard}.parquet`` with their reason."""
    cfg = config.core()
    return per_shard(context, "raw_shards", raw_shard, storage.store(), cfg,
                     workers=cfg.workers)
