"""SemDeDup cluster by cluster from a cluster-ordered copy of the vectors, in separate processes.

What the ``semdedup`` asset ran until :mod:`.semdedup_ranges` replaced it (each range reads
its rows straight from the per-shard embedding files: no full copy of every vector to a local
temporary file, so a range needs nothing but the store and its own arrays). Kept as a second
reference: ``tests/core/semantic/test_semdedup_ranges.py`` and
``bench/bench_semdedup_scale.py`` check that both give the same scores, partners and
decisions.

The vectors of one space are written once in cluster order (a stable counting sort: within a
cluster, rows keep their corpus order) to one ``.npy`` file; cluster ``c`` is then the row range
``offsets[c]:offsets[c + 1]``. A worker scores a range of clusters, memory-mapping only the rows
of the cluster it is on (the mapping is dropped after each cluster), so any number of processes
(or pods, given the file on shared storage) can split the clusters between them. The
computation per cluster is :func:`~mm_assets.core.semantic.semdedup.cluster_scores` on the same
rows in the same rank order as :func:`~mm_assets.core.semantic.semdedup.semdedup_space`, so
scores and partners are the same, and ε, decisions and the pHash confirmation of dense clusters
come from the same :func:`~mm_assets.core.semantic.semdedup.finish_space`, so they are the same (``tests/core/semantic/test_semdedup_parts.py``).

Memory model (N points, D dims, m = largest cluster, b = ``cfg.block``):
- the coordinator: 8 B (order) + 4 B (distance) + 1 B (unique) + 4 B (score) + 8 B (partner)
  ≈ 25 B per point, plus one shard block while writing the file — never all vectors;
- a worker: its range's slice of those arrays, one cluster as float32 (4·D·m B) and the
  similarity block (4·b·m B).
Disk: the cluster-ordered copy, 2·D B per point (float16).
"""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import tempfile
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np

from mm_assets.core.semantic.semdedup import (
    SemDedupConfig,
    SpaceResult,
    cluster_scores,
    finish_space,
    rank_members,
)
from mm_assets.core.semantic.semdedup_ranges import auto_workers


@dataclass(frozen=True, slots=True)
class ClusterLayout:
    """Where each cluster's rows are in the cluster-ordered file.

    Attributes:
        order: (N,) int64, corpus row at each cluster-ordered position.
        offsets: (k + 1,) int64, cluster ``c`` occupies ``offsets[c]:offsets[c + 1]``.
    """

    order: np.ndarray
    offsets: np.ndarray

    @property
    def k(self) -> int:
        return len(self.offsets) - 1


def cluster_layout(assign: np.ndarray, k: int | None = None) -> ClusterLayout:
    """Stable counting sort of (N,) cluster ids in ``[0, k)``."""
    k = int(assign.max()) + 1 if k is None and len(assign) else (k or 0)
    counts = np.bincount(assign, minlength=k) if len(assign) else np.zeros(k, np.int64)
    return ClusterLayout(np.argsort(assign, kind="stable").astype(np.int64),
                         np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


def write_by_cluster(path: str, blocks: Iterable[np.ndarray], layout: ClusterLayout, dim: int,
                     dtype=np.float16) -> None:
    """Write corpus rows, given as consecutive blocks (e.g. one per shard), in cluster order.

    Rows go to the file by positional writes (``os.pwrite``), one per run of consecutive
    destinations, so no more than one block is ever in memory.

    Raises:
        ValueError: the blocks do not add up to the layout's N rows of ``dim`` columns.
    """
    n = len(layout.order)
    dest = np.empty(n, np.int64)
    dest[layout.order] = np.arange(n)
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
              "shape": (n, dim)}
    row = np.dtype(dtype).itemsize * dim
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        base = f.tell()
        f.truncate(base + n * row)
        at = 0
        for block in blocks:
            if block.ndim != 2 or block.shape[1] != dim or at + len(block) > n:
                raise ValueError(f"block of shape {block.shape} at row {at} does not fit "
                                 f"({n}, {dim})")
            if len(block) == 0:  # a shard without points of this space
                continue
            d = dest[at:at + len(block)]
            srt = np.argsort(d, kind="stable")
            d, rows = d[srt], np.ascontiguousarray(block[srt], dtype=dtype)
            cut = np.flatnonzero(np.diff(d) != 1) + 1
            for lo, hi in zip(np.r_[0, cut], np.r_[cut, len(d)], strict=True):
                os.pwrite(f.fileno(), rows[lo:hi].tobytes(), base + int(d[lo]) * row)
            at += len(block)
        if at != n:
            raise ValueError(f"blocks hold {at} rows, the layout {n}")


def _cluster_rows(path: str, start: int, stop: int) -> np.ndarray:
    """(stop - start, D) float32 copy of rows, through a mapping dropped on return."""
    arr = np.load(path, mmap_mode="r")
    out = np.array(arr[start:stop], dtype=np.float32)
    del arr
    return out


def score_range(path: str, offsets: np.ndarray, c0: int, c1: int, order: np.ndarray,
                distance: np.ndarray, unique: np.ndarray, cfg: SemDedupConfig,
                device: str = "cpu", threads: int | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores of clusters ``c0..c1-1`` (one worker's share).

    Args:
        path: the cluster-ordered ``.npy``.
        offsets: the layout's (k + 1,) offsets.
        order, distance, unique: the slices ``[offsets[c0]:offsets[c1]]`` of the layout's order
            and of the distance / unique-flag arrays taken in cluster order.
        threads: torch intra-op threads in this process (``None``: leave as is).

    Returns:
        ``(corpus rows, scores float32, partner corpus rows (-1: none))`` of the unique points.
    """
    import torch

    if threads:
        torch.set_num_threads(threads)
    base = int(offsets[c0])
    rows_out, s_out, p_out = [], [], []
    for c in range(c0, c1):
        a, b = int(offsets[c]) - base, int(offsets[c + 1]) - base
        keep = np.flatnonzero(unique[a:b])
        if len(keep) == 0:
            continue
        glob = order[a:b][keep]
        x = _cluster_rows(path, base + a, base + b)[keep]
        rank = rank_members(distance[a:b][keep], cfg.ranking, cfg.seed + c)
        s, p = cluster_scores(x[rank], cfg.block, device, with_partner=True)
        g = glob[rank]
        rows_out.append(g)
        s_out.append(s)
        p_out.append(np.where(p >= 0, g[np.maximum(p, 0)], -1))
    if not rows_out:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.int64)
    return np.concatenate(rows_out), np.concatenate(s_out), np.concatenate(p_out)


def split_clusters(offsets: np.ndarray, parts: int) -> list[tuple[int, int]]:
    """Contiguous cluster ranges of about equal work (Σ size², the pairwise similarities)."""
    sizes = np.diff(offsets).astype(np.float64)
    if len(sizes) == 0:
        return []
    work = np.cumsum(sizes ** 2)
    cuts = np.searchsorted(work, work[-1] * np.arange(1, parts) / parts, side="right")
    bounds = sorted({0, *map(int, cuts), len(sizes)})
    return [(lo, hi) for lo, hi in itertools.pairwise(bounds) if hi > lo]


def semdedup_by_cluster(path: str, layout: ClusterLayout, assign: np.ndarray,
                        distance: np.ndarray, unique: np.ndarray, cfg: SemDedupConfig,
                        device: str = "cpu", workers: int = 1,
                        phashes: list[list[int]] | None = None) -> SpaceResult:
    """:func:`~mm_assets.core.semantic.semdedup.semdedup_space` from the cluster-ordered file.

    Args:
        path: written by :func:`write_by_cluster` with ``layout``.
        assign: (N,) cluster ids; distance: (N,) distance to the centroid, corpus order.
        unique: (N,) bool, False for exact duplicates (excluded, as in ``semdedup_space``).
        workers: processes (spawned; 1 = this process). Each gets contiguous cluster ranges and
            this process's torch thread count: the float sums of a matmul depend on its
            blocking, and with another thread count a score may differ in its last bit.
        phashes: image space: per point its pHashes (dense-cluster confirmation, as in
            ``semdedup_space``).

    Returns:
        The same :class:`SpaceResult` as ``semdedup_space`` on the whole array.
    """
    n = len(layout.order)
    if distance.shape != (n,) or unique.shape != (n,):
        raise ValueError(f"distance and unique must have shape ({n},)")
    d_sorted, u_sorted = distance[layout.order], unique[layout.order]
    ranges = split_clusters(layout.offsets, max(1, workers) * 4)

    def args(c0: int, c1: int):
        a, b = int(layout.offsets[c0]), int(layout.offsets[c1])
        return (path, layout.offsets, c0, c1, layout.order[a:b], d_sorted[a:b], u_sorted[a:b],
                cfg, device)

    scores = np.full(n, np.nan, np.float32)
    partner = np.full(n, -1, np.int64)
    if workers <= 1:
        results = (score_range(*args(c0, c1)) for c0, c1 in ranges)
        for rows, s, p in results:
            scores[rows], partner[rows] = s, p
    else:
        import torch

        threads = torch.get_num_threads()  # the same BLAS blocking as here: identical sums
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            futs = [pool.submit(score_range, *args(c0, c1), threads=threads)
                    for c0, c1 in ranges]
            for f in futs:
                rows, s, p = f.result()
                scores[rows], partner[rows] = s, p
    return finish_space(scores, partner, assign, unique, cfg, phashes)


def semdedup_blocks(blocks: Iterable[np.ndarray], dim: int, assign: np.ndarray,
                    distance: np.ndarray, unique: np.ndarray, cfg: SemDedupConfig,
                    device: str = "cpu", workers: int = 0, tmp_dir: str | None = None,
                    phashes: list[list[int]] | None = None) -> SpaceResult:
    """SemDeDup of one space given as consecutive (rows, ``dim``) blocks (e.g. per shard):
    the cluster-ordered file is written to a temporary folder, scored per cluster range in
    ``workers`` processes (:func:`auto_workers`), then removed.

    Args:
        assign: (N,) int cluster ids; distance: (N,) float32; unique: (N,) bool (corpus order).
    """
    layout = cluster_layout(np.asarray(assign, np.int64))
    with tempfile.TemporaryDirectory(dir=tmp_dir, prefix="semdedup-") as d:
        path = os.path.join(d, "by_cluster.npy")
        write_by_cluster(path, blocks, layout, dim)
        return semdedup_by_cluster(path, layout, assign, distance, unique, cfg, device,
                                   auto_workers(len(assign), workers, device), phashes)
