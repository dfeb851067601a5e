"""A tiny corpus for the pool_assign tests, embedded with the real corpus encoder
(EfficientNet-Lite0, ImageNet weights, onnxruntime on CPU): what raw_shards, embeddings and
clusters would leave in a root (raw shard, vectors + encoder identity, encoder segment, commit
records, image centroids), without running those stages. Each corpus image is its own
cluster (centroid = its vector), so a copy of corpus image i must be assigned to cluster i.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from mm_assets.core import layout, schemas
from mm_assets.core.commits import write_commit
from mm_assets.core.ingest.images import DEFAULT_MAX_PIXELS
from mm_assets.core.mine.pool_encoder import write_shard_identity
from mm_assets.core.mine.poolgen import DRAW, KINDS, encode_image
from mm_assets.core.records import Sample, StageCounts
from mm_assets.core.semantic.embed import embed_images
from mm_assets.core.semantic.embed_cache import ImageEmbeddingStore, encoder_fingerprint
from mm_assets.core.semantic.encoders import build_image_encoder
from mm_assets.core.shards import write_samples
from mm_assets.core.storage import Store

SHARD = "000000"


def encoder():
    """The default corpus encoder (cached per process)."""
    return build_image_encoder("efficientnet_lite0", "imagenet-1k", "cpu")


def build_corpus(root: str, per_kind: int = 2, seed: int = 123) -> tuple[Store, list[str]]:
    """Write the corpus into ``root``; returns the store and the corpus keys (cluster i =
    key i)."""
    rng = np.random.default_rng(seed)
    store, enc = Store(root), encoder()
    samples = []
    for kind in KINDS:
        for j in range(per_kind):
            im, cap = DRAW[kind](rng, 150, 130)
            samples.append(Sample(f"corpus-{kind}-{j}", [
                {"from": "human", "value": "<image>\nDescribe it."},
                {"from": "gpt", "value": cap}], [encode_image(im, "PNG")], ["png"], "corpus"))
    with store.open_write(layout.raw_shard(SHARD)) as f:
        write_samples(f, samples)
    vecs, errors = embed_images([s.images[0] for s in samples], enc, 16, 0, DEFAULT_MAX_PIXELS)
    assert not any(errors)
    keys = [s.key for s in samples]
    store.write_npy(layout.embedding_vectors(SHARD, "image"), vecs.astype(np.float16))
    store.write_table(layout.embedding_keys(SHARD, "image"), pl.DataFrame({"key": keys}),
                      schemas.EMBEDDING_KEYS)
    fp = encoder_fingerprint(enc, True, DEFAULT_MAX_PIXELS)
    from mm_assets.core.dedup.hashing import bytes_hash

    ImageEmbeddingStore(store, fp, enc.dim).write_segment(
        SHARD, [bytes_hash(s.images[0]) for s in samples], vecs, [""] * len(samples))
    write_shard_identity(store, SHARD, fp, enc)
    store.write_npy(layout.centroids("image"), vecs.astype(np.float32))
    for asset in ("raw_shards", "embeddings"):
        write_commit(store, asset, SHARD, StageCounts(len(samples), len(samples)))
    return store, keys
