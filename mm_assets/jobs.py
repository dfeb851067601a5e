"""Jobs of the code location: per-shard chain, global stages, and ingest of large drops.

Kept apart from :mod:`mm_assets.definitions` so the sensor can target them without importing
the whole code location (assets are selected by key).
"""

from dagster import AssetSelection, OpExecutionContext, define_asset_job, job, op

from mm_assets.config import dagster_config
from mm_assets.core.ingest.plan import IngestConfig, plan_ingest
from resources.storage import StorageResource

PER_SHARD_KEYS = ["raw_shards", "image_hashes", "embeddings", "ppl_scores"]
GLOBAL_KEYS = ["exact_duplicates", "clusters", "ppl_deciles", "semdedup"]

global_job = define_asset_job(
    "global_job", selection=AssetSelection.assets(*GLOBAL_KEYS),
    description="exact_duplicates, clusters, ppl_deciles and semdedup over all shards")
per_shard_job = define_asset_job(
    "per_shard_job", selection=AssetSelection.assets(*PER_SHARD_KEYS),
    description="raw_shards, image_hashes, embeddings and ppl_scores for new shards")


IngestDropsConfig = dagster_config(IngestConfig, "IngestDropsConfig", extra={
    "urls": (list[str], ..., "URLs of the JSON/JSONL drops to ingest")},
    doc="URLs of JSON/JSONL drops to ingest, and the ingest settings.")


@op
def ingest_drops(context: OpExecutionContext, config: IngestDropsConfig,
                 storage: StorageResource) -> None:
    """Ingest drops too large to ingest inside a sensor tick into shard manifests
    (``inputs/{id}.jsonl``); the new-data sensor turns them into partitions and per-shard
    runs on its next tick. Raises what :func:`plan_ingest` raises."""
    new = plan_ingest(storage.store(), config.urls, None, config.core())
    context.log.info(f"ingested {len(config.urls)} drop(s): {len(new)} new shard(s)")


@job(description="ingest large JSON/JSONL drops (requested by new_data_sensor)")
def ingest_job():
    ingest_drops()
