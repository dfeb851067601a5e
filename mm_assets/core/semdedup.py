"""SemDeDup (Abbas et al. 2023, "SemDeDup: Data-efficient learning at web-scale through
semantic deduplication", arXiv:2303.09540; facebookresearch/SemDeDup).

Within each k-means cluster, members are ranked by distance to the centroid
(``hard``: farthest first, as the paper keeps the least prototypical; ``easy``: nearest first;
``random``: seeded). Each member's score is ``s = max cos(x, y)`` over members ``y`` ranked
before it (``s = -1`` for the first member of a cluster). The score is stored once, so any ε
is a threshold on it: a member is a semantic duplicate when ``s >= 1 - ε`` (boundary included).
A target removal fraction ``f`` gives ``ε = 1 - t`` where ``t`` is the ``(1 - f)`` quantile
("higher" interpolation) of the scores of all points; ties at ``t`` may remove slightly more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

Ranking = Literal["hard", "easy", "random"]


@dataclass(frozen=True, slots=True)
class SemDedupConfig:
    """SemDeDup settings; give ``epsilon`` or ``target_fraction`` (the latter wins if both).

    Attributes:
        epsilon: duplicate when ``s >= 1 - epsilon``; in [0, 2].
        target_fraction: fraction of (unique) samples to remove, in [0, 1).
        ranking: member order within a cluster.
        seed: seed for ``random`` ranking.
        block: rows per block in the within-cluster similarity (memory O(block × cluster)).
    """

    epsilon: float | None = 0.05
    target_fraction: float | None = None
    ranking: Ranking = "hard"
    seed: int = 0
    block: int = 4096

    def __post_init__(self) -> None:
        if self.epsilon is None and self.target_fraction is None:
            raise ValueError("give epsilon or target_fraction")
        if self.epsilon is not None and not 0 <= self.epsilon <= 2:
            raise ValueError(f"epsilon must be in [0, 2], got {self.epsilon}")
        if self.target_fraction is not None and not 0 <= self.target_fraction < 1:
            raise ValueError(f"target_fraction must be in [0, 1), got {self.target_fraction}")
        if self.ranking not in ("hard", "easy", "random"):
            raise ValueError(f"ranking must be hard, easy or random, got {self.ranking!r}")


def rank_members(distance: np.ndarray, ranking: Ranking, seed: int) -> np.ndarray:
    """Order (indices) of one cluster's members; ties broken by index (stable sort)."""
    if ranking == "hard":
        return np.argsort(-distance, kind="stable")
    if ranking == "easy":
        return np.argsort(distance, kind="stable")
    return np.random.default_rng(seed).permutation(len(distance))


def cluster_scores(x: np.ndarray, block: int = 4096, device: str = "cpu") -> np.ndarray:
    """For rows already in rank order, ``s[i] = max_{j<i} x_i·x_j`` (``-1`` for ``i = 0``).

    Args:
        x: (m, D) float16/float32, L2-normalised, in rank order.
        block: rows per matmul block; memory is O(block × m) floats.
        device: torch device for the matmul.

    Returns:
        (m,) float32 scores.
    """
    m, _ = x.shape
    out = np.full(m, -1.0, dtype=np.float32)
    if m < 2:
        return out
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    for start in range(1, m, block):
        stop = min(m, start + block)
        sims = t[start:stop] @ t[:stop].T  # (b, stop)
        rows = torch.arange(start, stop, device=device)[:, None]
        cols = torch.arange(stop, device=device)[None, :]
        sims = sims.masked_fill(cols >= rows, -2.0)
        out[start:stop] = sims.max(dim=1).values.clamp(min=-1.0).cpu().numpy()
    return out


def semdedup_scores(x: np.ndarray, assign: np.ndarray, distance: np.ndarray,
                    cfg: SemDedupConfig, device: str = "cpu") -> np.ndarray:
    """Scores for all points, computed cluster by cluster.

    Args:
        x: (N, D) L2-normalised embeddings.
        assign: (N,) cluster ids.
        distance: (N,) distance to the centroid (ranking key).

    Returns:
        (N,) float32 scores aligned with ``x``.
    """
    n = x.shape[0]
    if assign.shape != (n,) or distance.shape != (n,):
        raise ValueError(f"assign/distance must have shape ({n},)")
    scores = np.full(n, -1.0, dtype=np.float32)
    for c in np.unique(assign):
        idx = np.flatnonzero(assign == c)
        order = idx[rank_members(distance[idx], cfg.ranking, cfg.seed + int(c))]
        scores[order] = cluster_scores(x[order], cfg.block, device)
    return scores


def resolve_epsilon(scores: np.ndarray, cfg: SemDedupConfig) -> float:
    """ε from config: given directly, or derived from ``target_fraction`` over ``scores``."""
    if cfg.target_fraction is None:
        return float(cfg.epsilon)
    if cfg.target_fraction == 0 or scores.size == 0:
        return 0.0 if scores.size == 0 else float(1.0 - scores.max() - 1e-6)
    t = np.quantile(scores, 1.0 - cfg.target_fraction, method="higher")
    return float(1.0 - t)


def is_duplicate(scores: np.ndarray, epsilon: float) -> np.ndarray:
    """(N,) bool: ``scores >= 1 - epsilon``."""
    return scores >= np.float32(1.0 - epsilon)
