"""Spherical k-means (FAISS) over L2-normalised embeddings.

Fit on a sample of at most ``fit_sample`` points (seeded), then assign every point to its
nearest centroid by inner product; :func:`spherical_kmeans_blocks` does the same over per-shard
blocks (fit sample gathered, then assignment block by block) without holding all points.

``k`` adapts to small corpora: ``k_eff = min(k, max(1, N // min_cluster_size))`` (stated in the
result as ``k_effective`` and ``k_rule``). FAISS k-means starts from k randomly drawn points, and
a point drawn as a starting centroid tends to keep its own cluster; when k nears N, both samples
of a copy pair are often drawn (probability ≈ (k/N)²), land in different clusters, and SemDeDup,
which compares only within a cluster, misses the copy. Measured on 100 seeded corpora of 40
points (30 around 4 topics + 10 copies, as ``tests/core/semantic/test_cluster_small_k.py``
builds them; the test checks 30): k = 16 missed 128 of 1,000 copies, k_eff = 5
(min_cluster_size 8) missed 1; min_cluster_size 16 (k = 2) missed 0 but merges topics. Corpora
with N ≥ k × min_cluster_size keep k (the demo's 242 image samples keep k = 16; its 70
text-only samples get 8, with the same SemDeDup decisions). SemDeDup (Abbas et al. 2023,
arXiv:2303.09540) itself uses clusters of thousands of points (50k clusters for LAION-440M).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import faiss
import numpy as np


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """k-means settings.

    Attributes:
        k: requested clusters per embedding space (> 0); a space of N points gets
            ``min(k, max(1, N // min_cluster_size))``.
        niter: k-means iterations.
        fit_sample: at most this many points are used to fit centroids.
        seed: random seed for sampling and initialisation.
        use_gpu: use a FAISS GPU index when available.
        min_cluster_size: average points per cluster at least (>= 1; 1 = only clamp k to N):
            fewer clusters on small corpora, so copy pairs share a cluster.
    """

    k: int = 16
    niter: int = 20
    fit_sample: int = 200_000
    seed: int = 0
    use_gpu: bool = True
    min_cluster_size: int = 8

    def __post_init__(self) -> None:
        if self.k <= 0 or self.niter <= 0 or self.fit_sample <= 0:
            raise ValueError(f"k, niter and fit_sample must be > 0: {self}")
        if self.min_cluster_size < 1:
            raise ValueError(f"min_cluster_size must be >= 1, got {self.min_cluster_size}")

    def effective_k(self, n: int) -> int:
        """Clusters used for ``n`` points: ``min(k, max(1, n // min_cluster_size))``, 0 for
        none."""
        return min(self.k, max(1, n // self.min_cluster_size)) if n > 0 else 0

    def k_rule(self, n: int) -> str:
        """How :meth:`effective_k` chose k for ``n`` points (for asset metadata)."""
        return (f"k_eff = min(k={self.k}, max(1, N={n} // min_cluster_size="
                f"{self.min_cluster_size})) = {self.effective_k(n)}")


@dataclass(slots=True)
class Clustering:
    """Result for one space.

    Attributes:
        assign: (N,) int32 cluster id per point.
        distance: (N,) float32 cosine distance ``1 - cos`` to its centroid.
        centroids: (k_eff, D) float32, L2-normalised.
        k_effective: clusters actually used (≤ requested k; :meth:`ClusterConfig.effective_k`).
        k_rule: how k_effective was chosen (:meth:`ClusterConfig.k_rule`).
    """

    assign: np.ndarray
    distance: np.ndarray
    centroids: np.ndarray
    k_effective: int
    k_rule: str = ""


def fit_rows(n: int, cfg: ClusterConfig) -> np.ndarray | None:
    """Sorted row indices of the seeded fit sample, or ``None`` when every row is used."""
    if n <= cfg.fit_sample:
        return None
    return np.sort(np.random.default_rng(cfg.seed).choice(n, cfg.fit_sample, replace=False))


def fit_centroids(fit: np.ndarray, n: int, cfg: ClusterConfig) -> np.ndarray:
    """``(k_eff, D) float32`` L2-normalised centroids trained on ``fit`` (rows of N), k_eff =
    :meth:`ClusterConfig.effective_k` of ``n``."""
    d = fit.shape[1]
    gpu = cfg.use_gpu and hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0
    km = faiss.Kmeans(d, cfg.effective_k(n), niter=cfg.niter, spherical=True, seed=cfg.seed, gpu=gpu,
                      min_points_per_centroid=1, max_points_per_centroid=max(256, n))
    km.train(np.ascontiguousarray(fit, dtype=np.float32))
    cents = km.centroids / np.maximum(np.linalg.norm(km.centroids, axis=1, keepdims=True), 1e-12)
    return cents.astype(np.float32)


def assign_rows(x: np.ndarray, cents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid by inner product: ``(N,) int32`` ids, ``(N,) float32`` 1 - cos."""
    index = faiss.IndexFlatIP(cents.shape[1])
    index.add(cents)
    sims, ids = index.search(np.ascontiguousarray(x, dtype=np.float32), 1)
    return ids[:, 0].astype(np.int32), (1.0 - sims[:, 0]).astype(np.float32)


def spherical_kmeans(x: np.ndarray, cfg: ClusterConfig) -> Clustering:
    """Cluster ``x`` (N, D) float16/float32 rows, L2-normalised.

    Memory: the fit sample as float32 plus (N, 1) assignments.
    """
    n, d = x.shape
    if n == 0:
        return Clustering(np.zeros(0, np.int32), np.zeros(0, np.float32),
                          np.zeros((0, d), np.float32), 0, cfg.k_rule(0))
    rows = fit_rows(n, cfg)
    cents = fit_centroids(x if rows is None else x[rows], n, cfg)
    ids, dist = assign_rows(x, cents)
    return Clustering(ids, dist, cents, len(cents), cfg.k_rule(n))


def spherical_kmeans_blocks(blocks: Callable[[], Iterable[np.ndarray]], n: int, d: int,
                            cfg: ClusterConfig) -> Clustering:
    """:func:`spherical_kmeans` over rows given as consecutive blocks (e.g. one per shard):
    the fit sample (the same seeded rows) is gathered in a first pass, every block is assigned
    in a second, so memory is the fit sample (≤ ``fit_sample`` × D float32) plus one block,
    never all N rows.

    Args:
        blocks: returns a fresh iterator over the (N_i, D) blocks, in corpus order (called
            twice).
        n: total rows; d: D.

    Raises:
        ValueError: the blocks hold other than ``n`` rows.
    """
    if n == 0:
        return spherical_kmeans(np.zeros((0, d), np.float32), cfg)
    rows = fit_rows(n, cfg)
    picked, at = [], 0
    for b in blocks():
        sel = (np.arange(len(b)) if rows is None else
               rows[(rows >= at) & (rows < at + len(b))] - at)
        picked.append(np.asarray(b[sel], dtype=np.float32))
        at += len(b)
    if at != n:
        raise ValueError(f"blocks hold {at} rows, expected {n}")
    cents = fit_centroids(np.concatenate(picked), n, cfg)
    del picked
    out = [assign_rows(b, cents) for b in blocks()]
    return Clustering(np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out]),
                      cents, len(cents), cfg.k_rule(n))
