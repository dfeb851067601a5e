"""pool_assign (per pool shard): an external image pool hashed, embedded with the corpus encoder
and assigned to the corpus image centroids."""

from dagster import DagsterInstance, Failure, MaterializeResult, asset

from mm_assets.assets._common import per_shard
from mm_assets.checks import counts_spec
from mm_assets.config import dagster_config
from mm_assets.core.mine import STAGE
from mm_assets.core.mine.assign import AssignConfig
from mm_assets.core.mine.pool import load_pool, partition_key, pool_names
from mm_assets.core.mine.pool_encoder import EncoderMismatchError, check_pool_encoder
from mm_assets.core.mine.pool_shard import load_centroids, run_pool_shard
from mm_assets.core.semantic.embed_cache import encoder_fingerprint
from mm_assets.partitions import GPU_POOL, GPU_TAGS, pool_shards, shard_backfill
from resources.models import EmbedderResource
from resources.storage import StorageResource

PoolAssignConfig = dagster_config(AssignConfig, "PoolAssignConfig")


def register_pool_shards(instance: DagsterInstance, storage: StorageResource,
                         pools: list[str] | None = None) -> list[str]:
    """Add every shard of ``pools`` (default: every registered pool) as a ``pool_shards``
    partition (``{pool}__{stem}``); returns all their keys (new and known), sorted by pool
    then stem. Lists each pool's prefixes once."""
    store = storage.store()
    keys = [partition_key(p, s) for p in (pool_names(store) if pools is None else pools)
            for s in load_pool(store, p).shards()]
    have = set(instance.get_dynamic_partitions(pool_shards.name))
    new = [k for k in keys if k not in have]
    for i in range(0, len(new), 10_000):  # one statement per batch
        instance.add_dynamic_partitions(pool_shards.name, new[i:i + 10_000])
    return keys


@asset(partitions_def=pool_shards, backfill_policy=shard_backfill, deps=["clusters"],
       group_name="mining", check_specs=[counts_spec(STAGE)], kinds={"faiss", "webdataset"},
       op_tags=GPU_TAGS, pool=GPU_POOL)
def pool_assign(context, config: PoolAssignConfig, storage: StorageResource,
                embedder: EmbedderResource) -> MaterializeResult:
    """Per pool shard ``{pool}__{stem}``: ``pools/{pool}/{stem}.parquet`` (POOL_ASSIGN: key,
    caption, bytes/pixel/perceptual hashes as image_hashes, size, nearest and second-nearest
    corpus image centroid with cosine), ``pools/{pool}/{stem}.npy`` (N×D float16,
    L2-normalised), ``.json`` sidecar (encoder identity, centroids digest); undecodable images
    and missing captions quarantined with reasons. Refuses an encoder other than the corpus
    embeddings' (model, weights checksum, D). ~2.7 KB per pool sample on disk at D = 1280
    (see :mod:`mm_assets.core.mine.assign`)."""
    store, cfg = storage.store(), config.core()
    enc = embedder.image_encoder()
    fp = encoder_fingerprint(enc, embedder.jpeg_draft, cfg.max_pixels)
    try:
        identity = check_pool_encoder(store, enc, fp)
        index, cents = load_centroids(store, cfg.device)
    except (EncoderMismatchError, FileNotFoundError, RuntimeError) as e:
        raise Failure(f"pool_assign: {e}") from e

    def run(key: str):
        return run_pool_shard(store, key, enc, index, cents, identity, cfg,
                              embedder.batch_size, embedder.loader_workers(),
                              embedder.jpeg_draft)

    return per_shard(context, STAGE, run, store=store)
