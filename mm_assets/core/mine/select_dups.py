"""Duplicate tests of mining candidates: against the corpus, streamed shard by shard, and among
the candidates themselves. Used by :mod:`.select`; no Dagster.

- exact: xxh3-128 of the encoded bytes and of the decoded pixels (the hashes of
  :mod:`mm_assets.core.dedup.hashing`), against every image of every committed
  ``image_hashes`` shard.
- perceptual: pHash within a Hamming radius, the candidate's pHash and its mirror's against
  the corpus pHashes (:func:`mm_assets.core.dedup.hamming.radius_pairs`, multi-index hashing).
- semantic: cosine of the L2-normalised image embeddings at or above a threshold, per cluster:
  a candidate is compared with the corpus images of its ``m`` nearest centroids' clusters
  (:func:`nearest_clusters`, recipe ``dedup.cosine_clusters``; the corpus vectors are read one
  embeddings shard at a time, memory-mapped, and only the rows of those clusters are
  multiplied) — as SemDeDup compares within clusters (Abbas et al., "SemDeDup", 2023,
  arXiv:2303.09540); a near duplicate can sit across a cluster border, hence more than one.

Memory: the candidates' hashes and vectors (C × (D × 4 + ~120) bytes), one corpus shard's
hash table and one shard's vectors at a time, and the corpus (key, cluster) table of the
image space (~40 bytes per corpus image).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from mm_assets.core import layout, schemas
from mm_assets.core.dedup.hamming import radius_pairs
from mm_assets.core.storage import Store

HASHES = schemas.subset(schemas.IMAGE_HASHES, "bytes_hashes", "pixel_hashes", "phashes")
CORPUS_PHASH_BATCH = 1 << 20


def corpus_exact(store: Store, shards: list[str], hashes: set[str]) -> set[str]:
    """The bytes/pixel hashes of ``hashes`` that some corpus image has (streamed per shard)."""
    found: set[str] = set()
    for shard in shards:
        t = store.read_table(layout.image_hashes(shard), HASHES)
        for col in ("bytes_hashes", "pixel_hashes"):
            vals = t[col].explode().drop_nulls()
            found.update(vals.filter(vals.is_in(list(hashes))).to_list())
    return found


def _codes(ph: np.ndarray, flip: np.ndarray) -> np.ndarray:
    return np.concatenate([ph, flip]).astype(np.int64)


def corpus_phash(store: Store, shards: list[str], ph: np.ndarray, flip: np.ndarray,
                 valid: np.ndarray, radius: int) -> np.ndarray:
    """(C,) bool: the candidate's pHash or its mirror's is within ``radius`` bits of a corpus
    image's pHash.

    Args:
        ph, flip: (C,) int64 pHash and mirror pHash of the candidates.
        valid: (C,) bool, False where the candidate has no pHash (too small or flat).
    """
    c = ph.shape[0]
    hit = np.zeros(c, bool)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return hit
    mine = _codes(ph[idx], flip[idx])
    batch: list[np.ndarray] = []

    def flush() -> None:
        corpus = np.concatenate(batch)
        i, j = radius_pairs(np.concatenate([mine, corpus]), radius)
        cross = (i < mine.size) & (j >= mine.size)
        hit[idx[i[cross] % idx.size]] = True
        batch.clear()

    n = 0
    for shard in shards:
        t = store.read_table(layout.image_hashes(shard), HASHES)
        codes = t["phashes"].explode().drop_nulls().to_numpy().astype(np.int64)
        batch.append(codes)
        n += codes.size
        if n >= CORPUS_PHASH_BATCH:
            flush()
            n = 0
    if batch:
        flush()
    return hit


def corpus_clusters(store: Store) -> pl.DataFrame:
    """``key, cluster`` of every corpus image-space sample (clusters/assignments.parquet)."""
    a = store.read_table(layout.CLUSTER_ASSIGNMENTS,
                         schemas.subset(schemas.CLUSTER_ASSIGNMENTS, "key", "space", "cluster"))
    return a.filter(pl.col("space") == "image").select("key", "cluster")


def load_vectors(store: Store, rel: str) -> np.ndarray:
    """An (N, D) float16 ``.npy``: memory-mapped when the store is local, else read."""
    if store.is_local:
        return np.load(store.path(rel), mmap_mode="r")
    return store.read_npy(rel)


def image_centroids(store: Store) -> np.ndarray:
    """(K, D) float32 L2-normalised corpus image centroids (``clusters/centroids_image.npy``)."""
    c = np.array(store.read_npy(layout.centroids("image")), np.float32)
    return c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)


def nearest_clusters(vecs: np.ndarray, cents: np.ndarray, m: int) -> np.ndarray:
    """(C, min(m, K)) int64: the ids of each row's ``m`` nearest centroids (cosine; exact,
    a (C, K) float32 product: 4·C·K bytes)."""
    m = min(m, cents.shape[0])
    if vecs.shape[0] == 0:
        return np.zeros((0, m), np.int64)
    sims = vecs @ cents.T
    return np.argpartition(-sims, m - 1, axis=1)[:, :m] if m < cents.shape[0] else \
        np.broadcast_to(np.arange(m), (vecs.shape[0], m))


def buckets(near: np.ndarray) -> dict[int, np.ndarray]:
    """Rows per cluster id, a row in each of its clusters (``near``: (C, m), -1: none)."""
    out: dict[int, list[np.ndarray]] = {}
    for col in near.T:
        for c in np.unique(col[col >= 0]):
            out.setdefault(int(c), []).append(np.flatnonzero(col == c))
    return {c: np.unique(np.concatenate(v)) for c, v in out.items()}


def corpus_cosine(store: Store, shards: list[str], clusters: pl.DataFrame, vecs: np.ndarray,
                  near: np.ndarray, threshold: float) -> np.ndarray:
    """(C,) bool: some corpus image of one of the candidate's clusters has cosine >=
    ``threshold`` with it.

    Args:
        clusters: :func:`corpus_clusters`.
        vecs: (C, D) float32 L2-normalised candidate vectors.
        near: (C, m) cluster ids per candidate (:func:`nearest_clusters`; -1: none).

    Raises:
        ValueError: the corpus vectors have another dimension than the pool's.
    """
    c, d = vecs.shape
    hit = np.zeros(c, bool)
    by = buckets(near)
    off = 0
    for shard in shards:
        keys = store.read_table(layout.embedding_keys(shard, "image"), schemas.EMBEDDING_KEYS)
        n = keys.height
        if n == 0:
            continue
        x = load_vectors(store, layout.embedding_vectors(shard, "image"))
        if x.shape[1] != d:
            raise ValueError(f"corpus embeddings of shard {shard} are {x.shape[1]}-d, the pool "
                             f"vectors {d}-d: the pool was embedded with another encoder")
        part = clusters.slice(off, n)
        if part.height == n and part["key"].equals(keys["key"]):
            cl = part["cluster"].to_numpy()
        else:  # not in corpus order: join by key
            cl = keys.join(clusters, on="key", how="left")["cluster"].fill_null(-1).to_numpy()
        off += n
        for k, rows in by.items():
            corpus_rows = np.flatnonzero(cl == k)
            if corpus_rows.size:
                sims = np.asarray(x[corpus_rows], np.float32) @ vecs[rows].T
                hit[rows[(sims >= threshold).any(axis=0)]] = True
    return hit


def mined_pairs(ph: np.ndarray, flip: np.ndarray, valid: np.ndarray, radius: int
                ) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``, i != j, of candidates within ``radius`` bits (pHash or mirror)."""
    idx = np.flatnonzero(valid)
    if idx.size < 2:
        return []
    i, j = radius_pairs(_codes(ph[idx], flip[idx]), radius)
    a, b = idx[i % idx.size], idx[j % idx.size]
    keep = a != b
    return list(zip(a[keep].tolist(), b[keep].tolist(), strict=True))


def cosine_pairs(vecs: np.ndarray, near: np.ndarray, threshold: float
                 ) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``, i < j, of candidates sharing a cluster bucket (``near``, as
    :func:`corpus_cosine`) with cosine >= ``threshold`` (per bucket of n rows an (n, n)
    float32 product: memory n² × 4 bytes)."""
    out: set[tuple[int, int]] = set()
    for rows in buckets(near).values():
        if rows.size < 2:
            continue
        s = vecs[rows] @ vecs[rows].T
        i, j = np.nonzero(np.triu(s >= threshold, k=1))
        out.update(zip(rows[i].tolist(), rows[j].tolist(), strict=True))
    return sorted(out)
