"""SemDeDup (Abbas et al. 2023, "SemDeDup: Data-efficient learning at web-scale through
semantic deduplication", arXiv:2303.09540; facebookresearch/SemDeDup).

Within each k-means cluster, members are ranked by distance to the centroid
(``hard``: farthest first, as the paper keeps the least prototypical; ``easy``: nearest first;
``random``: seeded). Each member's score is ``s = max cos(x, y)`` over members ``y`` ranked
before it (``s = -1`` for the first member of a cluster). The score is stored once, so any ε
is a threshold on it: a member is a semantic duplicate when ``s >= 1 - ε`` (boundary included).
A target removal fraction ``f`` gives ``ε = 1 - t`` where ``t`` is the ``(1 - f)`` quantile
("higher" interpolation) of the scores of all points; ties at ``t`` may remove slightly more.

Dense clusters (this project's addition, not in the paper): where distinct images already look
alike to the encoder — text-heavy pages, templated charts — a cosine threshold cannot tell a
copy from a neighbour. With the default EfficientNet-Lite0 on the demo, distinct document pages
score up to 0.98 and distinct charts up to 0.97 while resized/re-encoded copies score 0.90-0.98
(two distinct résumés in ../shared/data: 0.87). A cluster is *dense* when the median score of
its unique members is ≥ ``dense_median``; there a duplicate is confirmed only when its perceptual
hashes (64-bit pHash of each image, in order) are within ``phash_bits`` of its partner's (copies
measured 0-4 bits apart, distinct pages and charts ≥ 12). Photo clusters (median ≈ 0.3) keep
plain SemDeDup. Measured on the demo in ``tests/demo/test_demo_truth.py`` (precision of the
image removals against the generator's known copies, with and without confirmation).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

Ranking = Literal["hard", "easy", "random"]

MATMUL_THREADS: int | None = 1
"""torch intra-op threads for the similarity matmuls on CPU (``None``: the process's setting,
as before 2026-12-06). MKL picks a matmul's blocking, hence its float sums, by thread count:
between 1 and 2 threads 3 of 36 (rows, D) shapes tried differ in the last bit (all at D=1280).
A fixed count makes scores the same on every machine and for any number of worker processes
(the parallelism is across cluster ranges, :mod:`.semdedup_ranges`); and on a loaded 2-core
box one 212-point cluster took 4.8 ms with 1 thread against 125 ms with 2."""


@dataclass(frozen=True, slots=True)
class SemDedupConfig:
    """SemDeDup settings; give ``epsilon`` or ``target_fraction`` (the latter wins if both).

    Attributes:
        epsilon: duplicate when ``s >= 1 - epsilon``; in [0, 2].
        target_fraction: fraction of (unique) samples to remove, in [0, 1).
        ranking: member order within a cluster.
        seed: seed for ``random`` ranking.
        block: rows per block in the within-cluster similarity (memory O(block × cluster)).
        image_epsilon: ε for the image space when no target fraction is given (None:
            ``epsilon``). 0.15 suits the default EfficientNet-Lite0: on the demo its
            resized/re-encoded copies score 0.78-0.99 and distinct photos stay below 0.6.
        dense_median: a cluster whose unique members' median score is ≥ this is dense: its
            image duplicates need pHash confirmation (None: never).
        phash_bits: in a dense cluster, a duplicate's pHashes must be within this many bits
            (Hamming, each image in order) of its partner's.
    """

    epsilon: float | None = 0.05
    target_fraction: float | None = None
    ranking: Ranking = "hard"
    seed: int = 0
    block: int = 4096
    image_epsilon: float | None = 0.15
    dense_median: float | None = 0.8
    phash_bits: int = 8

    def __post_init__(self) -> None:
        if self.epsilon is None and self.target_fraction is None:
            raise ValueError("give epsilon or target_fraction")
        if self.epsilon is not None and not 0 <= self.epsilon <= 2:
            raise ValueError(f"epsilon must be in [0, 2], got {self.epsilon}")
        if self.target_fraction is not None and not 0 <= self.target_fraction < 1:
            raise ValueError(f"target_fraction must be in [0, 1), got {self.target_fraction}")
        if self.image_epsilon is not None and not 0 <= self.image_epsilon <= 2:
            raise ValueError(f"image_epsilon must be in [0, 2], got {self.image_epsilon}")
        if not 0 <= self.phash_bits <= 64:
            raise ValueError(f"phash_bits must be in [0, 64], got {self.phash_bits}")
        if self.ranking not in ("hard", "easy", "random"):
            raise ValueError(f"ranking must be hard, easy or random, got {self.ranking!r}")


def rank_members(distance: np.ndarray, ranking: Ranking, seed: int) -> np.ndarray:
    """Order (indices) of one cluster's members; ties broken by index (stable sort)."""
    if ranking == "hard":
        return np.argsort(-distance, kind="stable")
    if ranking == "easy":
        return np.argsort(distance, kind="stable")
    return np.random.default_rng(seed).permutation(len(distance))


def cluster_scores(x: np.ndarray, block: int = 4096, device: str = "cpu",
                   with_partner: bool = False):
    """For rows already in rank order, ``s[i] = max_{j<i} x_i·x_j`` (``-1`` for ``i = 0``).

    Args:
        x: (m, D) float16/float32, L2-normalised, in rank order.
        block: rows per matmul block; memory is O(block × m) floats.
        device: torch device for the matmul.
        with_partner: also return the argmax ``j`` per row (-1 for ``i = 0``).

    Returns:
        (m,) float32 scores, and (m,) int64 partners when ``with_partner``.

    On CPU the matmuls run with :data:`MATMUL_THREADS` threads (then restored), so the scores
    do not depend on the machine's core count.
    """
    m, _ = x.shape
    out = np.full(m, -1.0, dtype=np.float32)
    partner = np.full(m, -1, dtype=np.int64)
    prev = torch.get_num_threads()
    pin = MATMUL_THREADS if str(device).startswith("cpu") and MATMUL_THREADS != prev else None
    if m >= 2 and pin:
        torch.set_num_threads(pin)
    try:
        _scores_into(x, block, device, out, partner)
    finally:
        if m >= 2 and pin:
            torch.set_num_threads(prev)
    return (out, partner) if with_partner else out


def _scores_into(x: np.ndarray, block: int, device: str, out: np.ndarray,
                 partner: np.ndarray) -> None:
    m = len(x)
    if m >= 2:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
        for start in range(1, m, block):
            stop = min(m, start + block)
            sims = t[start:stop] @ t[:stop].T  # (b, stop)
            rows = torch.arange(start, stop, device=device)[:, None]
            cols = torch.arange(stop, device=device)[None, :]
            best = sims.masked_fill(cols >= rows, -2.0).max(dim=1)
            out[start:stop] = best.values.clamp(min=-1.0).cpu().numpy()
            partner[start:stop] = best.indices.cpu().numpy()


def semdedup_scores(x: np.ndarray, assign: np.ndarray, distance: np.ndarray,
                    cfg: SemDedupConfig, device: str = "cpu", with_partner: bool = False):
    """Scores for all points, computed cluster by cluster.

    Args:
        x: (N, D) L2-normalised embeddings.
        assign: (N,) cluster ids.
        distance: (N,) distance to the centroid (ranking key).

    Returns:
        (N,) float32 scores aligned with ``x``; with ``with_partner`` also (N,) int64 index of
        the earlier-ranked member achieving the score (-1 for the first of a cluster).
    """
    n = x.shape[0]
    if assign.shape != (n,) or distance.shape != (n,):
        raise ValueError(f"assign/distance must have shape ({n},)")
    scores = np.full(n, -1.0, dtype=np.float32)
    partner = np.full(n, -1, dtype=np.int64)
    for c in np.unique(assign):
        idx = np.flatnonzero(assign == c)
        order = idx[rank_members(distance[idx], cfg.ranking, cfg.seed + int(c))]
        s, p = cluster_scores(x[order], cfg.block, device, with_partner=True)
        scores[order] = s
        partner[order] = np.where(p >= 0, order[np.maximum(p, 0)], -1)
    return (scores, partner) if with_partner else scores


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


@dataclass(slots=True)
class SpaceResult:
    """SemDeDup over one embedding space.

    Attributes:
        scores: (N,) float32 score per point; NaN for points excluded as exact duplicates.
        duplicate: (N,) bool, semantic duplicates (never set for excluded points).
        epsilon: ε used for this space.
        n_unique: points scored (not excluded).
        partner: (N,) int64 index of the most similar earlier-ranked point (-1: none).
        dense: ids of the dense clusters (pHash confirmation applied; image space only).
        unconfirmed: (N,) bool, above the threshold in a dense cluster but not confirmed by
            pHash: kept, not in ``duplicate``.
    """

    scores: np.ndarray
    duplicate: np.ndarray
    epsilon: float
    n_unique: int
    partner: np.ndarray
    dense: list[int] = field(default_factory=list)
    unconfirmed: np.ndarray | None = None


def semdedup_space(x: np.ndarray, assign: np.ndarray, distance: np.ndarray,
                   unique: np.ndarray, cfg: SemDedupConfig, device: str = "cpu",
                   phashes: list[list[int]] | None = None) -> SpaceResult:
    """Exact duplicates first, then SemDeDup on the unique points of one space.

    Args:
        x: (N, D) L2-normalised embeddings.
        assign: (N,) cluster ids; distance: (N,) distance to centroid.
        unique: (N,) bool, False for non-representative members of exact-duplicate groups;
            they are excluded, so ``target_fraction`` is measured on unique points only.
        cfg: SemDeDup settings (the target fraction applies within this space).
        device: torch device for the block matmuls.
        phashes: per point, the 64-bit pHashes of its images in order (the image space):
            then ``cfg.image_epsilon`` applies and dense clusters need pHash confirmation
            (module doc). ``None``: plain SemDeDup with ``cfg.epsilon`` (the text space).

    Raises:
        ValueError: ``unique`` or ``phashes`` do not have N entries.
    """
    n = x.shape[0]
    if unique.shape != (n,):
        raise ValueError(f"unique must have shape ({n},), got {unique.shape}")
    scores = np.full(n, np.nan, np.float32)
    partner = np.full(n, -1, np.int64)
    where = np.flatnonzero(unique)
    s, p = semdedup_scores(x[unique], assign[unique], distance[unique], cfg, device, True)
    scores[unique], partner[unique] = s, np.where(p >= 0, where[np.maximum(p, 0)], -1)
    return finish_space(scores, partner, assign, unique, cfg, phashes)


PhashLookup = Callable[[np.ndarray], dict[int, list[int]]]
"""positions (ascending int64) -> ``{position: pHashes of its images}`` for just those points."""


def finish_space(scores: np.ndarray, partner: np.ndarray, assign: np.ndarray,
                 unique: np.ndarray, cfg: SemDedupConfig,
                 phashes: list[list[int]] | PhashLookup | None = None) -> SpaceResult:
    """ε, duplicates and pHash confirmation from one space's scores (however computed: all
    at once here, or one cluster range at a time in :mod:`.semdedup_ranges`).

    Args:
        scores: (N,) float32, NaN where not ``unique``; partner: (N,) int64 (-1: none).
        assign: (N,) cluster ids; unique: (N,) bool; cfg: as in :func:`semdedup_space`.
        phashes: the image space's pHashes: a list of N entries as in
            :func:`semdedup_space`, or a :data:`PhashLookup` called once with only the points
            that need confirmation (duplicates in dense clusters and their partners), so the
            caller loads pHashes for those alone (memory ≈ 100 B per such point instead of per
            point). ``None``: the text space.
    """
    n = len(scores)
    image = phashes is not None
    if image and not callable(phashes) and len(phashes) != n:
        raise ValueError(f"phashes must have {n} entries, got {len(phashes)}")
    if image and cfg.target_fraction is None and cfg.image_epsilon is not None:
        eps = float(cfg.image_epsilon)
    else:
        eps = resolve_epsilon(scores[unique], cfg)
    dup = np.zeros(n, dtype=bool)
    # a point with no earlier-ranked partner (the first of its cluster) is never a duplicate,
    # whatever ε (ε ≥ 1 made its score of 0 pass and its partner index -1)
    dup[unique] = is_duplicate(scores[unique], eps) & (partner[unique] >= 0)
    dense: list[int] = []
    unconfirmed = np.zeros(n, dtype=bool)
    if image and cfg.dense_median is not None:
        dense = dense_clusters(scores, assign, unique, cfg.dense_median)
        check = np.flatnonzero(dup & np.isin(assign, dense))
        if callable(phashes):  # load only what is compared
            phashes = phashes(np.unique(np.concatenate([check, partner[check]])))
        for i in check:
            if not phash_close(phashes[i], phashes[partner[i]], cfg.phash_bits):
                dup[i], unconfirmed[i] = False, True
    return SpaceResult(scores, dup, eps, int(unique.sum()), partner, dense, unconfirmed)


def dense_clusters(scores: np.ndarray, assign: np.ndarray, unique: np.ndarray,
                   threshold: float) -> list[int]:
    """Clusters whose scored unique members (the first-ranked, ``s = -1``, left out) have a
    median score ≥ ``threshold``. A cluster with a single scored member counts as dense: its
    density cannot be judged, so its removal needs pHash confirmation like a dense cluster's
    (small corpora: two unrelated toy images in one cluster are not removed on cosine alone)."""
    out = []
    for c in np.unique(assign):
        s = scores[(assign == c) & unique]
        s = s[s > -1]
        if s.size == 1 or (s.size >= 2 and float(np.median(s)) >= threshold):
            out.append(int(c))
    return out


def phash_close(a: list[int], b: list[int], bits: int) -> bool:
    """Same number of images and each pHash pair within ``bits`` (Hamming, 64-bit)."""
    from mm_assets.core.dedup.hashing import hamming

    return len(a) == len(b) > 0 and all(hamming(x, y) <= bits for x, y in zip(a, b, strict=True))


def removal_curve(scores: np.ndarray, epsilons: np.ndarray) -> np.ndarray:
    """Fraction of (finite) scores removed at each ε: the curve a team picks ε from."""
    s = scores[np.isfinite(scores)]
    if s.size == 0:
        return np.zeros(len(epsilons))
    return np.array([is_duplicate(s, float(e)).mean() for e in epsilons])
