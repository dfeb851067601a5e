"""Jobs of the code location: per-shard chain, global stages, and ingest of new drops.

Kept apart from :mod:`mm_assets.definitions` so the sensor can target them without importing
the whole code location (assets are selected by key).
"""

from dagster import AssetSelection, Failure, OpExecutionContext, define_asset_job, job, op

from mm_assets.config import dagster_config
from mm_assets.core.ingest.plan import IngestConfig, plan_ingest
from resources.storage import StorageResource

PER_SHARD_KEYS = ["raw_shards", "image_hashes", "embeddings", "ppl_scores", "text_quality"]
# semdedup_range (per range partition) and semdedup follow by automation (eager)
GLOBAL_KEYS = ["exact_duplicates", "clusters", "ppl_deciles", "semdedup_plan"]

global_job = define_asset_job(
    "global_job", selection=AssetSelection.assets(*GLOBAL_KEYS),
    description="exact_duplicates, clusters, ppl_deciles and the SemDeDup range plan over all "
    "shards (the ranges and semdedup then run by automation)")
per_shard_job = define_asset_job(
    "per_shard_job", selection=AssetSelection.assets(*PER_SHARD_KEYS),
    description="raw_shards, image_hashes, embeddings, ppl_scores and text_quality for new shards")
eval_results_job = define_asset_job(
    "eval_results_job", selection=AssetSelection.assets("eval_results"),
    description="record dropped eval-results files for one mixture (eval_results_sensor)")
pool_assign_job = define_asset_job(
    "pool_assign_job", selection=AssetSelection.assets("pool_assign"),
    description="assign new shards of a registered image pool (new_data_sensor)")


IngestDropsConfig = dagster_config(IngestConfig, "IngestDropsConfig", extra={
    "urls": (list[str], ..., "URLs of the JSON/JSONL drops to ingest")},
    doc="URLs of JSON/JSONL drops to ingest, and the ingest settings.")


@op
def ingest_drops(context: OpExecutionContext, config: IngestDropsConfig,
                 storage: StorageResource) -> None:
    """Ingest the drops the new-data sensor took into shard manifests (``inputs/{id}.jsonl``),
    one input at a time under the root's ingest lock; the sensor turns them into partitions
    and per-shard runs on its next tick. An input that cannot be ingested does not stop the
    others.

    Raises:
        Failure: some inputs could not be ingested (each named with its error; the others
            were ingested).
    """
    store, cfg, bad = storage.store(), config.core(), []
    for url in config.urls:
        try:
            new = plan_ingest(store, [url], None, cfg)
            context.log.info(f"ingested {url}: {len(new)} new shard(s)")
        except Exception as e:  # noqa: BLE001 - one bad input must not stop the others
            bad.append(f"{url}: {type(e).__name__}: {' '.join(str(e).split())}")
    if bad:
        raise Failure(f"{len(bad)} of {len(config.urls)} input(s) not ingested: "
                      + "; ".join(bad))


@job(description="ingest new drops into shard manifests (requested by new_data_sensor)")
def ingest_job():
    ingest_drops()
