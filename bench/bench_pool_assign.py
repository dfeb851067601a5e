"""pool_assign: assignment throughput vs a bare FAISS search, and the per-shard cost of hashing
+ embedding a pool shard.

Usage: nice -n 10 .venv/bin/python bench/bench_pool_assign.py [--n 50000] [--k 1024]
           [--dim 1280] [--rounds 3] [--shard 256] [--size 320] [--device cpu]

1. Assignment: ``--n`` random L2-normalised float16 vectors (as ``pools/{pool}/{stem}.npy``
   stores them) against ``--k`` centroids. Baseline: one bare ``IndexFlatIP.search(x, 2)`` on
   the same vectors already in float32 (no conversion, no output columns). Ours:
   :func:`mm_assets.core.mine.assign.assign_vectors` (float16 -> float32 per block, k=2, the
   four output columns). Best of ``--rounds`` each, alternated; ratio = baseline_s / ours_s
   (goal >= 0.8).
2. Per-shard cost: a generated pool shard (``--shard`` images of ~``--size`` px, five kinds,
   :mod:`mm_assets.core.mine.poolgen`) through
   :func:`~mm_assets.core.mine.assign.process_pool_shard` with the default corpus encoder
   (EfficientNet-Lite0, onnxruntime on CPU): seconds per 1,000 images for read + hash
   (xxh3 bytes, pixels, pHash + mirror), embed, assign, and the whole shard; the first
   (warm-up) pass is not counted.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

from mm_assets.core.mine.assign import (
    AssignConfig,
    assign_vectors,
    centroid_index,
    process_pool_shard,
)
from mm_assets.core.mine.poolgen import PoolGenConfig, generate_pool
from mm_assets.core.semantic.encoders import build_image_encoder


def unit(rng, n, d, dtype):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(dtype)


def bench_assign(a) -> None:
    rng = np.random.default_rng(0)
    x16 = unit(rng, a.n, a.dim, np.float16)
    x32 = x16.astype(np.float32)
    cents = unit(rng, a.k, a.dim, np.float32)
    index = centroid_index(cents, a.device)
    best = {"bare": float("inf"), "ours": float("inf")}
    for _ in range(a.rounds):
        t0 = time.perf_counter()
        _, ids = index.search(x32, 2)
        best["bare"] = min(best["bare"], time.perf_counter() - t0)
        t0 = time.perf_counter()
        c, _, _, _ = assign_vectors(x16, index)
        best["ours"] = min(best["ours"], time.perf_counter() - t0)
    assert (c == ids[:, 0]).all()
    print(f"assignment: N={a.n} D={a.dim} K={a.k} device={a.device}, best of {a.rounds}")
    for name, s in best.items():
        print(f"  {name:5s} {s:8.3f} s  {a.n / s:12,.0f} vectors/s")
    print(f"  ratio bare/ours = {best['bare'] / best['ours']:.2f} (goal >= 0.8)")


def bench_shard(a) -> None:
    enc = build_image_encoder("efficientnet_lite0", "imagenet-1k", "cpu")
    index = centroid_index(unit(np.random.default_rng(1), 64, enc.dim, np.float32))
    with tempfile.TemporaryDirectory() as tmp:
        generate_pool(tmp, PoolGenConfig(n=a.shard, shard_size=a.shard, size=a.size, seed=4))
        url = f"{tmp}/00000000.tar"
        nbytes = Path(url).stat().st_size
        process_pool_shard(url, "b", "0", enc, index, AssignConfig(), 32)  # warm-up
        t0 = time.perf_counter()
        res = process_pool_shard(url, "b", "0", enc, index, AssignConfig(), 32)
        wall = time.perf_counter() - t0
    n = res.table.height
    print(f"\npool shard: {n} images (~{a.size} px, {nbytes / n / 1024:.1f} KiB each), "
          f"encoder {enc.name} ({enc.backend}, {enc.device})")
    for k, s in [*res.seconds.items(), ("total_wall_s", wall)]:
        print(f"  {k:14s} {s:8.2f} s  {1000 * s / n:8.2f} s per 1k images")
    print(f"  on disk per sample: vectors {2 * enc.dim} B + table row (see README)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--k", type=int, default=1024)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--shard", type=int, default=256)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip-shard", action="store_true")
    a = ap.parse_args()
    bench_assign(a)
    if not a.skip_shard:
        bench_shard(a)


if __name__ == "__main__":
    main()
