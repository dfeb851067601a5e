"""embeddings (per shard): image vectors and text-only vectors, float16, keys aligned."""

import time
from collections import Counter

import polars as pl
from dagster import MaterializeResult, asset

from mm_assets.assets._common import per_shard, read_shard, write_quarantine
from mm_assets.checks import counts_spec, upstream_spec
from mm_assets.core import layout, schemas
from mm_assets.core.mine.pool_encoder import write_shard_identity
from mm_assets.core.records import StageCounts
from mm_assets.core.semantic.embed_cache import (
    MAX_PIXELS,
    ImageEmbeddingStore,
    cache_dir,
    embed_shard_cached,
    encoder_fingerprint,
)
from mm_assets.partitions import GPU_POOL, GPU_TAGS, shard_backfill, shards
from resources.models import EmbedderResource
from resources.storage import StorageResource


@asset(partitions_def=shards, backfill_policy=shard_backfill, deps=["raw_shards"],
       group_name="semantic", check_specs=[counts_spec("embeddings"), upstream_spec("embeddings")],
       kinds={"pytorch"},
       op_tags=GPU_TAGS, pool=GPU_POOL)
def embeddings(context, storage: StorageResource, embedder: EmbedderResource
               ) -> MaterializeResult:
    """``embeddings/{shard}/image.npy`` (N_img×D float16, the mean of each sample's image
    vectors) + ``image_keys.parquet``, and ``text.npy`` (N_txt×384 float16) +
    ``text_keys.parquet`` for text-only samples; all rows L2-normalised. Each distinct image
    (by content hash) is embedded once per encoder across the corpus: per-image vectors live in
    the content-addressed ``image_embeddings/{encoder fingerprint}/`` store this asset writes
    (one segment per shard; see :mod:`mm_assets.core.semantic.embed_cache`)."""
    store = storage.store()
    img_enc, txt_enc = embedder.image_encoder(), embedder.text_encoder()
    fp = encoder_fingerprint(img_enc, embedder.jpeg_draft, MAX_PIXELS)
    cache = ImageEmbeddingStore(store, fp, img_enc.dim)

    def run(shard: str):
        samples = read_shard(store, layout.RAW_SHARDS, shard)
        t0 = time.perf_counter()
        emb, cached = embed_shard_cached(samples, img_enc, txt_enc, cache, shard,
                                         embedder.batch_size, embedder.loader_workers(),
                                         draft=embedder.jpeg_draft)
        keys_schema = schemas.EMBEDDING_KEYS
        for space, vecs, keys in (("image", emb.image, emb.image_keys),
                                  ("text", emb.text, emb.text_keys)):
            store.write_npy(layout.embedding_vectors(shard, space), vecs)
            store.write_table(layout.embedding_keys(shard, space),
                              pl.DataFrame({"key": keys}, schema=keys_schema), keys_schema)
        write_quarantine(store, "embeddings", shard, emb.quarantined)
        write_shard_identity(store, shard, fp, img_enc)  # pool_assign refuses another encoder
        counts = StageCounts(len(samples), len(emb.image_keys) + len(emb.text_keys),
                             quarantined=Counter(q.reason for q in emb.quarantined))
        return counts, {"image_model": img_enc.name, "image_dim": img_enc.dim,
                        "image_weights": img_enc.pretrained or "random-init (not pretrained)",
                        "image_backend": img_enc.backend,
                        "jpeg_draft": embedder.jpeg_draft, "text_model": txt_enc.name,
                        "n_image": len(emb.image_keys),
                        "n_text": len(emb.text_keys), "device": img_enc.device,
                        "images_per_s": round(sum(len(x.images) for x in samples)
                                              / max(time.perf_counter() - t0, 1e-9), 2),
                        **cached.as_metadata(), "image_cache": store.url(cache_dir(fp)),
                        "multi_image_rule": "normalised mean of the sample's image vectors"}

    return per_shard(context, "embeddings", run, store=store, upstream="raw_shards")
