"""Embedding stage vs bare forward; SemDeDup vs its matmul bound; FAISS k-means time.

Usage: .venv/bin/python bench/bench_semantic.py [--images 128] [--rounds 3] [--n 200000]
       [--d 512] [--k 100]

1. Embedding: ``embed_images`` (decode + preprocess in DataLoader workers + forward + L2 norm)
   vs ``encoder.forward`` alone on the same images already decoded and preprocessed
   (ViT-B-32, random init, CPU). Goal: stage / bare <= 1.1. Bare and stage runs alternate for
   ``--rounds`` rounds; images/s and the ratio are medians over rounds (the ratio per round,
   so a load spike from other processes hits both sides of it).
2. SemDeDup: ``semdedup_scores`` on N×D float16 vectors in k clusters vs the bare per-cluster
   matmuls ``x_c @ x_c.T`` (the FLOP bound of the exact algorithm), same run. Goal <= 2x.
   Peak RSS above the input is sampled every 5 ms.
3. FAISS spherical k-means (fit + assign) time on the same vectors.
"""

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._rss import Peak
from mm_assets.core.semantic.cluster import ClusterConfig, spherical_kmeans
from mm_assets.core.semantic.embed import embed_images
from mm_assets.core.semantic.encoders import build_image_encoder
from mm_assets.core.semantic.semdedup import SemDedupConfig, rank_members, semdedup_scores


def bench_embedding(n_images: int, rounds: int = 3) -> list[tuple]:
    enc = build_image_encoder("ViT-B-32", None, "cpu")
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(n_images):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(buf, "JPEG")
        blobs.append(buf.getvalue())
    batch = torch.stack([enc.preprocess(Image.open(io.BytesIO(b)).convert("RGB"))
                         for b in blobs])
    enc.forward(batch[:8])  # warm-up
    times: dict[int, list[float]] = {-1: [], 0: [], 2: []}  # -1: bare forward
    for _ in range(rounds):
        t = time.perf_counter()
        for i in range(0, n_images, 32):
            enc.forward(batch[i:i + 32])
        times[-1].append(time.perf_counter() - t)
        for workers in (0, 2):
            t = time.perf_counter()
            embed_images(blobs, enc, 32, workers, 64_000_000)
            times[workers].append(time.perf_counter() - t)
    bare = times[-1]
    rows = [("bare forward (preprocessed)", n_images / np.median(bare), 1.0)]
    for workers in (0, 2):
        dt = times[workers]
        ratio = float(np.median([s / b for s, b in zip(dt, bare, strict=True)]))
        rows.append((f"embed_images, {workers} workers", n_images / np.median(dt), ratio))
    return rows


def bench_semdedup(n: int, d: int, k: int) -> list[tuple]:
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((k, d)).astype(np.float32)
    x = centers[rng.integers(0, k, n)] + rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x = x.astype(np.float16)
    t = time.perf_counter()
    clus = spherical_kmeans(x, ClusterConfig(k=k, niter=20, seed=0))
    t_km = time.perf_counter() - t
    t = time.perf_counter()
    for c in np.unique(clus.assign):  # the bound: the same matmuls, nothing else
        idx = np.flatnonzero(clus.assign == c)
        idx = idx[rank_members(clus.distance[idx], "hard", 0)]
        xc = torch.from_numpy(x[idx].astype(np.float32))
        (xc @ xc.T).max()
    bound = time.perf_counter() - t
    with Peak() as p:
        t = time.perf_counter()
        semdedup_scores(x, clus.assign, clus.distance, SemDedupConfig(), "cpu")
        stage = time.perf_counter() - t
    sizes = np.bincount(clus.assign)
    return [("kmeans fit+assign", t_km, None, None),
            ("per-cluster matmul bound", bound, 1.0, None),
            ("semdedup_scores", stage, stage / bound, p.extra),
            (f"(largest cluster {sizes.max()}, N={n}, D={d}, k={k})", None, None, None)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--k", type=int, default=100)
    a = ap.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"\n{'embedding':<34}{'images/s':>10}{'vs bare':>10}")
    for name, ips, ratio in bench_embedding(a.images, a.rounds):
        print(f"{name:<34}{ips:>10.1f}{ratio:>10.2f}")
    print(f"\n{'semantic':<34}{'seconds':>10}{'ratio':>10}{'peak MB':>10}")
    for name, sec, ratio, mb in bench_semdedup(a.n, a.d, a.k):
        cells = [f"{sec:>10.2f}" if sec else " " * 10, f"{ratio:>10.2f}" if ratio else " " * 10,
                 f"{mb:>10.0f}" if mb is not None else " " * 10]
        print(f"{name:<34}{''.join(cells)}")


if __name__ == "__main__":
    main()
