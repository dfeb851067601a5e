"""Spherical k-means (FAISS) over L2-normalised embeddings.

Fit on a sample of at most ``fit_sample`` points (seeded), then assign every point to its
nearest centroid by inner product. ``k`` is clamped to the number of points (stated in the
result), so asking for k = 500 on 175 points gives 175 clusters instead of a crash.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """k-means settings.

    Attributes:
        k: requested clusters per embedding space (> 0).
        niter: k-means iterations.
        fit_sample: at most this many points are used to fit centroids.
        seed: random seed for sampling and initialisation.
        use_gpu: use a FAISS GPU index when available.
    """

    k: int = 16
    niter: int = 20
    fit_sample: int = 200_000
    seed: int = 0
    use_gpu: bool = True

    def __post_init__(self) -> None:
        if self.k <= 0 or self.niter <= 0 or self.fit_sample <= 0:
            raise ValueError(f"k, niter and fit_sample must be > 0: {self}")


@dataclass(slots=True)
class Clustering:
    """Result for one space.

    Attributes:
        assign: (N,) int32 cluster id per point.
        distance: (N,) float32 cosine distance ``1 - cos`` to its centroid.
        centroids: (k_eff, D) float32, L2-normalised.
        k_effective: clusters actually used (≤ requested k).
    """

    assign: np.ndarray
    distance: np.ndarray
    centroids: np.ndarray
    k_effective: int


def spherical_kmeans(x: np.ndarray, cfg: ClusterConfig) -> Clustering:
    """Cluster ``x`` (N, D) float16/float32 rows, L2-normalised.

    Memory: the fit sample as float32 plus (N, 1) assignments.
    """
    n, d = x.shape
    if n == 0:
        return Clustering(np.zeros(0, np.int32), np.zeros(0, np.float32),
                          np.zeros((0, d), np.float32), 0)
    x = np.ascontiguousarray(x, dtype=np.float32)
    k = min(cfg.k, n)
    rng = np.random.default_rng(cfg.seed)
    fit = x if n <= cfg.fit_sample else x[np.sort(rng.choice(n, cfg.fit_sample, replace=False))]
    gpu = cfg.use_gpu and hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0
    km = faiss.Kmeans(d, k, niter=cfg.niter, spherical=True, seed=cfg.seed, gpu=gpu,
                      min_points_per_centroid=1, max_points_per_centroid=max(256, n))
    km.train(fit)
    cents = km.centroids / np.maximum(np.linalg.norm(km.centroids, axis=1, keepdims=True), 1e-12)
    index = faiss.IndexFlatIP(d)
    index.add(cents.astype(np.float32))
    sims, ids = index.search(x, 1)
    return Clustering(ids[:, 0].astype(np.int32), (1.0 - sims[:, 0]).astype(np.float32),
                      cents.astype(np.float32), k)
