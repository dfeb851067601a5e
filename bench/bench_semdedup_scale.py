"""SemDeDup per cluster range at scale: peak RSS of the range step against the bytes of all
vectors, seconds with 1 and 2 processes, and identity with the earlier implementations.

    PYTHONPATH=. nice -n 10 .venv/bin/python bench/bench_semdedup_scale.py \\
        --n 1000000 --dim 1280 --k 4000 --compare 200000

Corpus: ``n`` L2-normalised float16 vectors in ``k`` clusters (centre + Gaussian noise: cosine
≈ 0.5 within a cluster), 5% of rows a noisy copy of an earlier row of their shard (cosine
≈ 0.99), written as per-shard ``embeddings/{shard}/image.npy`` files of ``--shard`` rows like
real embeddings; 85% of points unique (the rest stand for exact duplicates). The assignment is
the generating cluster (k-means is benchmarked elsewhere), the distance ``1 - cos(x, centre)``.

Memory is sampled every 5 ms with psutil: this process (the coordinator, or the range step
itself with 1 process) and each worker process (RSS every 5 ms, private USS every ~100 ms).
Absolute RSS includes the ~0.7 GB that ``import torch`` (CUDA build) maps into every process,
mostly shared library pages; "above start" excludes it for this process. Workers are forked
from a forkserver that imported torch once (started by a one-shard warm-up, timed apart). With ``--compare M``, the first M points are also run through ``semdedup_space`` (all
vectors in memory, the reference) and ``semdedup_blocks`` (the cluster-ordered temporary file
the asset used before) and the scores, partners and decisions are compared bit for bit.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time

import numpy as np
import psutil

from mm_assets.core import layout
from mm_assets.core.semantic.semdedup import SemDedupConfig, semdedup_space
from mm_assets.core.semantic.semdedup_parts import semdedup_blocks
from mm_assets.core.semantic.semdedup_ranges import (
    DEFAULT_RANGE_BYTES,
    ShardVectors,
    plan_ranges,
    semdedup_ranges,
)
from mm_assets.core.storage import Store

MIB = 2**20


class Peaks:
    """Peak RSS (MiB) of this process, of each child, and of all children at once."""

    def __enter__(self):
        self.me = psutil.Process()
        self.base = self.me.memory_info().rss / MIB
        self.peak, self.kids, self.each, self.uss, self.run = self.base, 0.0, {}, {}, True
        self.old = {c.pid for c in self.me.children(recursive=True)}  # forkserver, tracker
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()
        self.t0 = time.perf_counter()
        return self

    def _watch(self):
        tick = 0
        while self.run:
            self.peak = max(self.peak, self.me.memory_info().rss / MIB)
            total = 0.0
            for c in self.me.children(recursive=True):
                if c.pid in self.old:
                    continue
                try:
                    r = c.memory_info().rss / MIB
                    if tick % 20 == 0:  # private memory (smaps): every ~100 ms
                        self.uss[c.pid] = max(self.uss.get(c.pid, 0.0),
                                              c.memory_full_info().uss / MIB)
                except psutil.Error:
                    continue
                total += r
                self.each[c.pid] = max(self.each.get(c.pid, 0.0), r)
            self.kids = max(self.kids, total)
            tick += 1
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.t0
        self.run = False
        self.thread.join()


def write_corpus(store: Store, n: int, dim: int, k: int, shard: int, seed: int = 0):
    """Per-shard vector files + (assign, distance, unique); returns them and the source."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    sigma = 1.0 / np.sqrt(dim)  # |noise|² ≈ 1: cosine ≈ 0.5 within a cluster
    assign, distance, rels, counts = [], [], [], []
    for i, lo in enumerate(range(0, n, shard)):
        m = min(shard, n - lo)
        a = rng.integers(0, k, m)
        x = rng.random((m, dim), dtype=np.float32)  # uniform noise of variance sigma²
        x -= 0.5
        x *= sigma * np.sqrt(12)
        x += centres[a]
        copy = np.flatnonzero(rng.random(m) < 0.05)
        copy = copy[copy > 0]
        src = (rng.random(len(copy)) * copy).astype(np.int64)  # an earlier row of the shard
        a[copy] = a[src]
        x[copy] = x[src] + 0.1 * sigma * rng.standard_normal((len(copy), dim), np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        rels.append(layout.embedding_vectors(f"{i:06d}", "image"))
        store.write_npy(rels[-1], x.astype(np.float16))
        counts.append(m)
        assign.append(a.astype(np.int32))
        distance.append(1 - np.einsum("ij,ij->i", x, centres[a]))
    unique = np.random.default_rng(seed + 1).random(n) < 0.85
    src = ShardVectors(store, tuple(rels), np.array(counts, np.int64), dim)
    return src, np.concatenate(assign), np.concatenate(distance), unique


def run_new(src, assign, distance, unique, cfg, workers):
    with Peaks() as p:
        res = semdedup_ranges(src, assign, distance, unique, cfg, "cpu", workers)
    top = sorted(p.each, key=p.each.get, reverse=True)[:workers] if workers > 1 else []
    kids = ", ".join(f"{p.each[k]:,.0f} (private {p.uss.get(k, 0):,.0f})" for k in top)
    print(f"| ranges, {workers} process{'es' if workers > 1 else ''} | {len(assign):,} | "
          f"{p.seconds:.1f} | {p.peak:,.0f} ({p.peak - p.base:+,.0f}) | {kids or '-'} | "
          f"{p.kids:,.0f} | removed {int(res.duplicate.sum()):,} |", flush=True)
    return res


def compare(src, assign, distance, unique, cfg, m: int) -> None:
    """The first ``m`` points (whole shards): new vs the two earlier implementations."""
    cut = int(np.searchsorted(src.starts, m))
    sub = ShardVectors(src.store, src.rels[:cut], src.counts[:cut], src.dim)
    m = int(sub.counts.sum())
    a, d, u = assign[:m], distance[:m], unique[:m]
    new = run_new(sub, a, d, u, cfg, 1)
    with Peaks() as p:
        x = np.concatenate([np.asarray(src.store.read_npy(r)) for r in sub.rels])
        ref = semdedup_space(x, a, d, u, cfg)
        del x
    print(f"| semdedup_space (all vectors in memory) | {m:,} | {p.seconds:.1f} | "
          f"{p.peak:,.0f} ({p.peak - p.base:+,.0f}) | - | - | |", flush=True)
    with tempfile.TemporaryDirectory() as tmp, Peaks() as p:
        blocks = (np.asarray(src.store.read_npy(r)) for r in sub.rels)
        old = semdedup_blocks(blocks, src.dim, a, d, u, cfg, "cpu", 1, tmp)
    print(f"| semdedup_blocks (before: cluster-ordered temp file) | {m:,} | {p.seconds:.1f} | "
          f"{p.peak:,.0f} ({p.peak - p.base:+,.0f}) | - | - | |", flush=True)
    for name, r in (("semdedup_space", ref), ("semdedup_blocks", old)):
        same = (np.array_equal(new.scores, r.scores, equal_nan=True)
                and np.array_equal(new.partner, r.partner)
                and np.array_equal(new.duplicate, r.duplicate) and new.epsilon == r.epsilon)
        print(f"identical to {name} at {m:,}: {same} (scores, partners, decisions, ε)")
        if not same:
            raise SystemExit(1)


def compare_threads(src, assign, distance, unique, cfg, m: int) -> None:
    """Before 2026-12-06 the matmuls ran with the process's torch threads: how much do those
    scores differ from the pinned ones (whole clusters, the lowest ids, about ``m`` points)?"""
    import torch

    from mm_assets.core.semantic import semdedup

    sizes = np.cumsum(np.bincount(assign))
    pos = np.flatnonzero(assign < max(1, int(np.searchsorted(sizes, m))))
    x = src.gather(pos)
    a, d, u = assign[pos], distance[pos], unique[pos]
    m = len(pos)
    pinned = semdedup_space(x, a, d, u, cfg)
    semdedup.MATMUL_THREADS = None
    try:
        with Peaks() as p:
            before = semdedup_space(x, a, d, u, cfg)
    finally:
        semdedup.MATMUL_THREADS = 1
    s0, s1 = pinned.scores[u], before.scores[u]
    diff = s0 != s1
    print(f"\nat {m:,} points ({len(np.unique(a))} whole clusters), matmuls with {torch.get_num_threads()} threads (before) vs 1 "
          f"(now): {int(diff.sum()):,} of {int(u.sum()):,} scores differ (max "
          f"{float(np.abs(s0 - s1).max()):.2e}), {int((pinned.partner != before.partner).sum())}"
          f" partners, {int((pinned.duplicate != before.duplicate).sum())} decisions, ε "
          f"{before.epsilon!r} vs {pinned.epsilon!r}; {p.seconds:.1f} s with "
          f"{torch.get_num_threads()} threads")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--k", type=int, default=4000)
    ap.add_argument("--shard", type=int, default=10_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--compare", type=int, default=200_000, help="0: skip")
    ap.add_argument("--compare-threads", type=int, default=50_000, help="0: skip")
    ap.add_argument("--dir", default=None, help="where to write the corpus (temporary)")
    a = ap.parse_args()
    cfg = SemDedupConfig(epsilon=None, target_fraction=0.1)
    with tempfile.TemporaryDirectory(dir=a.dir, prefix="semdedup-bench-") as d:
        t0 = time.perf_counter()
        src, assign, distance, unique = write_corpus(Store(d), a.n, a.dim, a.k, a.shard)
        total = a.n * a.dim * 2 / MIB
        jobs = plan_ranges(assign, distance, unique, 2 * a.dim, DEFAULT_RANGE_BYTES, 4)
        biggest = max(len(j.positions) for j in jobs) * 2 * a.dim / MIB
        print(f"corpus: {a.n:,} × {a.dim} float16 in {len(src.rels)} shard files, all vectors "
              f"{total:,.0f} MiB, written in {time.perf_counter() - t0:.0f} s; "
              f"{len(jobs)} ranges (1 process), largest {biggest:.0f} MiB of vectors; "
              f"RSS after imports {psutil.Process().memory_info().rss / MIB:,.0f} MiB\n")
        with Peaks() as p:  # the forkserver (imports torch once) and 2 workers forked from it
            tiny = ShardVectors(src.store, src.rels[:1], src.counts[:1], a.dim)
            m = int(src.counts[0])
            semdedup_ranges(tiny, assign[:m], distance[:m], unique[:m], cfg, "cpu", 2)
        server = max(p.each, key=p.each.get)
        print(f"start-up: forkserver + 2 workers scoring one shard: {p.seconds:.1f} s; the "
              f"forkserver (imports torch once) RSS {p.each[server]:,.0f} MiB, private "
              f"{p.uss.get(server, 0):,.0f} MiB; workers share its pages\n")
        print("| run | points | seconds | peak RSS MiB here (above start) | peak RSS MiB per "
              "worker (private) | workers together (RSS, forkserver apart) | note |\n|---|---|---|---|---|---|---|")
        results = [run_new(src, assign, distance, unique, cfg, w) for w in a.workers]
        for r in results[1:]:
            assert np.array_equal(r.scores, results[0].scores, equal_nan=True)
            assert np.array_equal(r.partner, results[0].partner)
        if len(results) > 1:
            print(f"\nwith {' and '.join(map(str, a.workers))} processes: identical scores "
                  f"and partners")
        if a.compare:
            compare(src, assign, distance, unique, cfg, a.compare)
        if a.compare_threads:
            compare_threads(src, assign, distance, unique, cfg, a.compare_threads)


if __name__ == "__main__":
    main()
