"""SemDeDup one cluster range at a time, reading only that range's vectors from the per-shard
embedding files (Abbas et al. 2023, "SemDeDup", arXiv:2303.09540; the decision rule, ranking
and tie-breaks are those of :mod:`mm_assets.core.semantic.semdedup`).

The unit of work is a contiguous range of cluster ids (:class:`RangeJob`): the space positions
of the range's *unique* points (exact duplicates are never scored, so never read), their
cluster ids and centroid distances. :func:`score_range` gathers exactly those rows from the
per-shard ``embeddings/{shard}/{space}.npy`` files (:class:`ShardVectors`; memory-mapped on a
local root, ``np.load(mmap_mode="r")``, one shard mapped at a time; positions are sorted, so
each shard is read front to back), then scores cluster by cluster with
:func:`~mm_assets.core.semantic.semdedup.cluster_scores` on the same rows in the same rank
order as :func:`~mm_assets.core.semantic.semdedup.semdedup_space`: scores and partners are
bit-identical (both run the matmuls with
:data:`~mm_assets.core.semantic.semdedup.MATMUL_THREADS` threads), and ε,
decisions and the pHash confirmation of dense clusters come from the same
:func:`~mm_assets.core.semantic.semdedup.finish_space` (``tests/core/semantic/
test_semdedup_ranges.py`` compares with both earlier implementations).

A job needs nothing but the store and its own arrays, so ranges run in any process: the graph
stores each job and runs it as a Dagster partition of its own (:mod:`.semdedup_plan`, assets
``semdedup_plan`` / ``semdedup_range`` / ``semdedup``); :func:`semdedup_ranges` runs them in
``workers`` processes forked from a forkserver that imported this module once
(:func:`mm_assets.core.parallel.map_shards`, which also carries the caller's fsspec settings,
e.g. an S3 endpoint, into the workers), or in this one (benchmarks, tests). No vector is copied
to a temporary file and no process ever holds more than one range.

Memory model (N points of the space, U unique, D dims, range budget R bytes):
- the coordinator: cluster id 4 B + distance 4 B + unique 1 B + score 4 B + partner 8 B
  ≈ 21 B per point, + the jobs (position 8 B + cluster 8 B + distance 4 B = 20 B per unique
  point) and 24 B per unique point while planning them; never a vector;
- a range: its unique rows as float16, 2·D B per point, at most R bytes (``range_bytes``;
  a single cluster larger than R is a range of its own: SemDeDup compares within a cluster, so
  one cluster's rows are the floor), + ≈ 32 B per point (positions, distance, scores,
  partners), + the cluster being scored as float32 (4·D·m B) and its similarity block
  (4·block·m B); on a local root the page cache pages of the one shard file being read count
  in RSS while it is mapped (≤ one shard's vectors), on an object store one shard's ``.npy``
  is read whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from mm_assets.core.parallel import map_shards
from mm_assets.core.semantic.semdedup import (
    SemDedupConfig,
    SpaceResult,
    cluster_scores,
    finish_space,
    rank_members,
)
from mm_assets.core.storage import Store

DEFAULT_RANGE_BYTES = 128 * 2**20


@dataclass(frozen=True, slots=True)
class ShardVectors:
    """Where the vectors of one space live: one (counts[i], dim) float16 ``.npy`` per shard,
    consecutive in corpus order (space position ``p`` is row ``p - starts[i]`` of shard ``i``).

    Attributes:
        store: the root holding the files (picklable: workers open it themselves).
        rels: store-relative ``.npy`` path per shard.
        counts: (S,) int64 rows per shard (0: the shard has no point in this space).
        dim: D, columns of every file.
    """

    store: Store
    rels: tuple[str, ...]
    counts: np.ndarray
    dim: int

    @property
    def starts(self) -> np.ndarray:
        """(S + 1,) int64 first space position of each shard, then N."""
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    def gather(self, positions: np.ndarray) -> np.ndarray:
        """(len(positions), D) float16 rows at ascending space ``positions``.

        Only shards holding a wanted row are opened, one at a time.

        Raises:
            ValueError: positions not ascending or out of range, or a file whose shape is not
                (counts[i], dim) (embeddings changed after clustering).
        """
        positions = np.asarray(positions, np.int64)
        starts = self.starts
        if len(positions) and (np.any(np.diff(positions) < 0) or positions[0] < 0
                               or positions[-1] >= starts[-1]):
            raise ValueError(f"positions must be ascending in [0, {int(starts[-1])})")
        out = np.empty((len(positions), self.dim), np.float16)
        cut = np.searchsorted(positions, starts)
        for i in np.flatnonzero(np.diff(cut)):
            lo, hi = int(cut[i]), int(cut[i + 1])
            arr = self.store.read_npy(self.rels[i])
            if arr.shape != (int(self.counts[i]), self.dim):
                raise ValueError(f"{self.rels[i]} has shape {arr.shape}, expected "
                                 f"({int(self.counts[i])}, {self.dim}): re-materialize clusters")
            out[lo:hi] = arr[positions[lo:hi] - starts[i]]
            del arr  # drop the mapping (and its page-cache pages from this process's RSS)
        return out


@dataclass(frozen=True, slots=True)
class RangeJob:
    """The unique points of clusters ``c0..c1-1``, in ascending space position.

    Attributes:
        positions: (n,) int64 ascending space positions.
        cluster: (n,) int64 cluster id per point; distance: (n,) float32 to its centroid.
    """

    c0: int
    c1: int
    positions: np.ndarray
    cluster: np.ndarray
    distance: np.ndarray


def plan_ranges(assign: np.ndarray, distance: np.ndarray, unique: np.ndarray, row_bytes: int,
                range_bytes: int = DEFAULT_RANGE_BYTES, min_ranges: int = 1) -> list[RangeJob]:
    """Split the clusters into contiguous ranges of unique points, each holding at most
    ``range_bytes`` of vectors (``row_bytes`` per point) and about ``1 / min_ranges`` of the
    pairwise work (Σ cluster size²) — whichever closes a range first.

    Args:
        assign: (N,) int cluster ids ≥ 0; distance: (N,) float32; unique: (N,) bool.
        row_bytes: bytes of one vector (2·D for float16).
        min_ranges: at least this many ranges when there are that many clusters (e.g. 4 per
            worker, so workers stay busy whatever the cluster sizes).

    Returns:
        The jobs, every unique point in exactly one; clusters without unique points in none.

    Raises:
        ValueError: arrays of different lengths, or a negative cluster id.
    """
    n = len(assign)
    if distance.shape != (n,) or unique.shape != (n,):
        raise ValueError(f"assign, distance and unique must all have shape ({n},)")
    where = np.flatnonzero(unique)
    a = np.asarray(assign, np.int64)[where]
    if len(a) and a.min() < 0:
        raise ValueError("cluster ids must be >= 0")
    if not len(a):
        return []
    order = np.argsort(a, kind="stable")
    sizes = np.bincount(a)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    max_rows = max(1, range_bytes // max(1, row_bytes))
    work_cap = float((sizes.astype(np.float64) ** 2).sum()) / max(1, min_ranges)
    jobs, c0, rows, work = [], 0, 0, 0.0
    for c, m in enumerate(sizes):
        if rows and (rows + m > max_rows or work + float(m) ** 2 > work_cap * (1 + 1e-9)):
            jobs.append(_job(c0, c, order, bounds, where, a, distance))
            c0, rows, work = c, 0, 0.0
        rows, work = rows + int(m), work + float(m) ** 2
    jobs.append(_job(c0, len(sizes), order, bounds, where, a, distance))
    return [j for j in jobs if len(j.positions)]


def _job(c0, c1, order, bounds, where, a, distance) -> RangeJob:
    idx = np.sort(order[bounds[c0]:bounds[c1]])  # ascending position: sequential shard reads
    return RangeJob(c0, c1, where[idx], a[idx], np.asarray(distance, np.float32)[where[idx]])


def score_range(src: ShardVectors, job: RangeJob, cfg: SemDedupConfig, device: str = "cpu"
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SemDeDup scores of one range (memory: see the module doc).

    Within a cluster, members are taken in corpus order and ranked by
    :func:`~mm_assets.core.semantic.semdedup.rank_members` with seed ``cfg.seed + cluster``,
    exactly as :func:`~mm_assets.core.semantic.semdedup.semdedup_scores` does.

    Returns:
        ``(positions int64, scores float32, partner positions int64 (-1: none))``.
    """
    x = src.gather(job.positions)
    n = len(job.positions)
    scores = np.full(n, -1.0, np.float32)
    partner = np.full(n, -1, np.int64)
    grp = np.argsort(job.cluster, kind="stable")
    ids, first = np.unique(job.cluster[grp], return_index=True)
    for c, lo, hi in zip(ids, first, np.r_[first[1:], n], strict=True):
        idx = grp[lo:hi]  # ascending position = corpus order
        order = idx[rank_members(job.distance[idx], cfg.ranking, cfg.seed + int(c))]
        s, p = cluster_scores(x[order], cfg.block, device, with_partner=True)
        scores[order] = s
        partner[order] = np.where(p >= 0, order[np.maximum(p, 0)], -1)
    partner = np.where(partner >= 0, job.positions[np.maximum(partner, 0)], -1)
    return job.positions, scores, partner


def _score_job(job: RangeJob, src: ShardVectors, cfg: SemDedupConfig, device: str):
    return score_range(src, job, cfg, device)


def auto_workers(n: int, workers: int, device: str) -> int:
    """``workers`` when > 0; else 1 on a GPU or below 100k points, one per core otherwise."""
    if workers > 0:
        return workers
    return 1 if device.startswith("cuda") or n < 100_000 else max(1, os.cpu_count() or 1)


def semdedup_ranges(src: ShardVectors, assign: np.ndarray, distance: np.ndarray,
                    unique: np.ndarray, cfg: SemDedupConfig, device: str = "cpu",
                    workers: int = 1, range_bytes: int = DEFAULT_RANGE_BYTES,
                    phashes: list[list[int]] | None = None) -> SpaceResult:
    """:func:`~mm_assets.core.semantic.semdedup.semdedup_space` of one space whose vectors
    stay in their per-shard files: same scores, partners, ε and decisions.

    Args:
        src: the space's per-shard vector files (N rows in all).
        assign: (N,) int cluster ids ≥ 0; distance: (N,) float32 to the centroid (corpus
            order); unique: (N,) bool, False for exact duplicates (not scored, not read).
        workers: processes (forkserver; ≤ 1: this process); the result does not depend on it.
        range_bytes: most vector bytes one range holds (module doc).
        phashes: image space: per point its pHashes (dense-cluster confirmation).

    Raises:
        ValueError: array lengths differ from ``src``'s N, or a vector file changed shape.
    """
    n = int(src.counts.sum())
    if assign.shape != (n,):
        raise ValueError(f"assign must have shape ({n},), got {assign.shape}")
    jobs = plan_ranges(assign, distance, unique, 2 * src.dim, range_bytes, max(1, workers) * 4)
    scores = np.full(n, np.nan, np.float32)
    partner = np.full(n, -1, np.int64)
    for pos, s, p in map_shards(_score_job, jobs, (src, cfg, device), max(1, workers)):
        scores[pos], partner[pos] = s, p
    return finish_space(scores, partner, np.asarray(assign), unique, cfg, phashes)
