"""A corpus + pool root embedded with the real corpus encoder (EfficientNet-Lite0, ImageNet-1k
weights, onnxruntime on CPU), for ``bench/mine_pool_demo.py --encoder efficientnet``.

The corpus: ``n_corpus`` images drawn by :mod:`mm_assets.core.mine.poolgen` (shapes, texture,
scene, document, chart; skewed kind frequencies), written as raw shards with what
``image_hashes`` (:func:`~mm_assets.core.dedup.exact.hash_samples`), ``embeddings`` (vectors,
keys, encoder identity) and ``clusters`` (spherical k-means of the real vectors,
:func:`~mm_assets.core.semantic.cluster.spherical_kmeans`) would leave, with commit records.
The pool: :func:`~mm_assets.core.mine.poolgen.generate_pool` (fresh images of the same five
kinds + exact, resized and mirrored copies of corpus images + broken / caption-less samples),
registered with :func:`~mm_assets.core.mine.pool.add_pool` and assigned shard by shard by the
code the ``pool_assign`` asset runs (:func:`~mm_assets.core.mine.pool_shard.run_pool_shard`:
read, hash, embed, assign, write; then its commit record). Only the corpus stages are
short-cut; every pool vector is a real EfficientNet-Lite0 embedding.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from mm_assets.core import layout, schemas
from mm_assets.core.commits import write_commit
from mm_assets.core.dedup.exact import hash_samples
from mm_assets.core.ingest.images import DEFAULT_MAX_PIXELS
from mm_assets.core.mine.assign import AssignConfig
from mm_assets.core.mine.pool import add_pool, all_partition_keys
from mm_assets.core.mine.pool_encoder import check_pool_encoder, write_shard_identity
from mm_assets.core.mine.pool_shard import load_centroids, run_pool_shard
from mm_assets.core.mine.poolgen import (
    DRAW,
    KINDS,
    PoolGenConfig,
    corpus_images,
    encode_image,
    generate_pool,
)
from mm_assets.core.records import Sample, StageCounts
from mm_assets.core.semantic.cluster import ClusterConfig, spherical_kmeans
from mm_assets.core.semantic.embed import embed_images
from mm_assets.core.semantic.embed_cache import encoder_fingerprint
from mm_assets.core.semantic.encoders import build_image_encoder
from mm_assets.core.shards import write_samples
from mm_assets.core.storage import Store


def encoder():
    """The default corpus encoder: EfficientNet-Lite0, ImageNet-1k, CPU (onnxruntime)."""
    return build_image_encoder("efficientnet_lite0", "imagenet-1k", "cpu")


def embed(enc, blobs: list[bytes], batch: int = 32) -> np.ndarray:
    """(N, D) float32 L2-normalised vectors of ``blobs`` (every one must decode)."""
    v, errors = embed_images(blobs, enc, batch, 0, DEFAULT_MAX_PIXELS)
    if any(errors):
        raise ValueError(f"undecodable images: {Counter(e for e in errors if e)}")
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)


@dataclass
class RealWorld:
    """What the builder wrote; ``copies``: pool key -> (how, corpus key)."""

    store: Store
    pool: str
    enc: object
    corpus: dict[str, bytes] = field(default_factory=dict)
    copies: dict[str, tuple[str, str]] = field(default_factory=dict)
    sizes: Counter = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)
    assign_seconds: Counter = field(default_factory=Counter)
    quarantined: Counter = field(default_factory=Counter)


def _corpus(w: RealWorld, n: int, k: int, shard_size: int, size: int, rng, log) -> None:
    store, enc = w.store, w.enc
    p = np.arange(1, len(KINDS) + 1, dtype=float) ** 1.5
    samples = []
    for i in range(n):
        kind = str(rng.choice(KINDS, p=p / p.sum()))
        wd, ht = (int(size * rng.uniform(0.75, 1.25)) for _ in range(2))
        im, cap = DRAW[kind](rng, wd, ht)
        fmt = "PNG" if i % 3 == 0 else "JPEG"
        samples.append(Sample(f"c{i:06d}", [{"from": "human", "value": "<image>\nDescribe it."},
                                             {"from": "gpt", "value": cap}],
                              [encode_image(im, fmt)], [fmt.lower().replace("jpeg", "jpg")],
                              "corpus"))
    w.corpus = {s.key: s.images[0] for s in samples}
    t0 = time.perf_counter()
    vecs = embed(enc, [s.images[0] for s in samples])
    w.seconds["corpus_embed_s"] = time.perf_counter() - t0
    log(f"corpus: {n} images embedded in {w.seconds['corpus_embed_s']:.0f} s")
    fp = encoder_fingerprint(enc, True, DEFAULT_MAX_PIXELS)
    for s0 in range(0, n, shard_size):
        shard, part = f"{s0 // shard_size:06d}", samples[s0:s0 + shard_size]
        with store.open_write(layout.raw_shard(shard)) as f:
            write_samples(f, part)
        store.write_table(layout.image_hashes(shard), hash_samples(part, DEFAULT_MAX_PIXELS),
                          schemas.IMAGE_HASHES)
        store.write_npy(layout.embedding_vectors(shard, "image"),
                        vecs[s0:s0 + len(part)].astype(np.float16))
        store.write_table(layout.embedding_keys(shard, "image"),
                          pl.DataFrame({"key": [s.key for s in part]}), schemas.EMBEDDING_KEYS)
        write_shard_identity(store, shard, fp, enc)
        for asset in ("raw_shards", "image_hashes", "embeddings"):
            write_commit(store, asset, shard, StageCounts(len(part), len(part)))
    cl = spherical_kmeans(vecs, ClusterConfig(k=k, seed=0, use_gpu=False))
    store.write_npy(layout.centroids("image"), cl.centroids.astype(np.float32))
    store.write_table(layout.CLUSTER_ASSIGNMENTS, pl.DataFrame({
        "key": list(w.corpus), "space": ["image"] * n, "cluster": cl.assign,
        "distance": cl.distance}, schema=schemas.CLUSTER_ASSIGNMENTS),
        schemas.CLUSTER_ASSIGNMENTS)
    w.sizes = Counter(cl.assign.tolist())


def build_real_world(root: str, pool_dir: str, n_corpus: int = 1500, n_pool: int = 20000,
                     k: int = 12, pool_shard: int = 2000, corpus_shard: int = 500,
                     n_copies: int = 700, size: int = 160, seed: int = 0,
                     pool: str = "gen", log=print) -> RealWorld:
    """Write and assign the corpus and the pool (module doc). ``n_copies`` of each kind of
    copy (exact, resized, mirrored; distinct originals: 3·n_copies ≤ n_corpus). Cost: one
    EfficientNet-Lite0 forward per corpus and pool image (≈ 30 images/s on 2 idle cores)."""
    rng = np.random.default_rng(seed)
    w = RealWorld(Store(root), pool, encoder())
    _corpus(w, n_corpus, k, corpus_shard, size, rng, log)
    t0 = time.perf_counter()
    truth = generate_pool(pool_dir, PoolGenConfig(
        n=n_pool, shard_size=pool_shard, n_exact=n_copies, n_resized=n_copies,
        n_flipped=n_copies, n_broken=5, n_no_caption=5, size=size, seed=seed + 1),
        corpus_images(w.store, n_corpus))
    w.seconds["pool_generate_s"] = time.perf_counter() - t0
    for r in truth.filter(pl.col("copy_of").is_not_null()).iter_rows(named=True):
        w.copies[f"{pool}/{r['shard']}/{r['wds_key']}"] = (r["how"], r["copy_of"])
    add_pool(w.store, pool, [pool_dir])
    identity = check_pool_encoder(w.store, w.enc, encoder_fingerprint(w.enc, True,
                                                                      DEFAULT_MAX_PIXELS))
    index, cents = load_centroids(w.store)
    keys = all_partition_keys(w.store)
    t0 = time.perf_counter()
    for i, key in enumerate(keys):
        counts, meta = run_pool_shard(w.store, key, w.enc, index, cents, identity,
                                      AssignConfig())
        write_commit(w.store, "pool_assign", key, counts)
        w.quarantined.update(counts.quarantined)
        for s in ("read_hash_s", "embed_s", "assign_s"):
            w.assign_seconds[s] += meta.get(s, 0.0)
        el = time.perf_counter() - t0
        log(f"pool_assign {i + 1}/{len(keys)} {key}: {counts.n_out} rows, "
            f"{meta['s_per_1k_images']:.0f} s/1k images, {el:.0f} s so far")
    w.seconds["pool_assign_s"] = time.perf_counter() - t0
    return w


def load_real_world(root: str, pool_dir: str, pool: str = "gen") -> RealWorld:
    """A world :func:`build_real_world` wrote and kept (``mine_pool_demo.py --keep DIR``):
    corpus bytes from its raw shards, the copies from the pool's ``truth.parquet``, cluster
    sizes from the assignments; nothing is re-embedded."""
    from mm_assets.core.commits import committed
    from mm_assets.core.shards import read_samples

    w = RealWorld(Store(root), pool, encoder())
    for shard in committed(w.store, "raw_shards"):
        with w.store.open_read(layout.raw_shard(shard)) as f:
            w.corpus.update({s.key: s.images[0] for s in read_samples(f)})
    truth = pl.read_parquet(f"{pool_dir}/truth.parquet")
    for r in truth.filter(pl.col("copy_of").is_not_null()).iter_rows(named=True):
        w.copies[f"{pool}/{r['shard']}/{r['wds_key']}"] = (r["how"], r["copy_of"])
    a = w.store.read_table(layout.CLUSTER_ASSIGNMENTS, schemas.CLUSTER_ASSIGNMENTS)
    w.sizes = Counter(a["cluster"].to_list())
    return w
