"""Hashing throughput vs raw read of the same shards, and grouping 1M synthetic hashes.

Usage: .venv/bin/python bench/bench_hashing.py [--mb 300] [--groups 1000000]

1. Builds ~--mb MB of canonical WebDataset shards from the real images in ../shared/data
   (repeated), in a temp dir (page-cached after the first pass).
2. Times, on the same shards: raw read (tar parse, bytes in memory), read + xxh3-128 of every
   image (the exact-dedup byte hash), read + full hashing (decode, pixel hash, pHash).
3. Groups N synthetic samples (30% in duplicate groups) with ``exact_groups`` in a subprocess,
   reporting seconds and peak RSS above the interpreter baseline.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mm_assets.core.dedup.exact import hash_samples
from mm_assets.core.dedup.hashing import bytes_hash
from mm_assets.core.ingest.images import sniff_ext
from mm_assets.core.records import Sample
from mm_assets.core.shards import read_samples, write_samples

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def build_shards(out: Path, mb: int) -> list[Path]:
    blobs = []
    for p in sorted((SHARED / "llava").rglob("*")):
        if p.suffix.lower() in {".jpg", ".jpeg", ".png"}:
            data = p.read_bytes()
            blobs.append((data, sniff_ext(data)))
    shards, total, i = [], 0, 0
    while total < mb * 2**20:
        path = out / f"{len(shards):05d}.tar"
        samples = []
        for data, ext in blobs:
            samples.append(Sample(f"k{i}", [{"from": "human", "value": "<image>\nq"},
                                            {"from": "gpt", "value": "a"}], [data], [ext]))
            i += 1
            total += len(data)
        with open(path, "wb") as f:
            write_samples(f, samples)
        shards.append(path)
    return shards


def timed(fn, shards):
    t = time.perf_counter()
    n = fn(shards)
    return time.perf_counter() - t, n


def raw_read(shards):
    n = 0
    for p in shards:
        with open(p, "rb") as f:
            n += sum(len(b) for s in read_samples(f) for b in s.images)
    return n


def read_and_bytes_hash(shards):
    n = 0
    for p in shards:
        with open(p, "rb") as f:
            for s in read_samples(f):
                for b in s.images:
                    bytes_hash(b)
                    n += len(b)
    return n


def read_and_full_hash(shards):
    n = 0
    for p in shards:
        with open(p, "rb") as f:
            samples = list(read_samples(f))
        hash_samples(samples, 64_000_000)
        n += sum(len(b) for s in samples for b in s.images)
    return n


GROUP_CODE = """
import threading, time, numpy as np, polars as pl
from mm_assets.core.dedup.exact import exact_groups
n = {n}
def now():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
peak = [0.0]
def watch():
    while True:
        peak[0] = max(peak[0], now()); time.sleep(0.005)
threading.Thread(target=watch, daemon=True).start()
def rss():
    time.sleep(0.02); v = peak[0]; peak[0] = now(); return v
base = rss()
rng = np.random.default_rng(0)
ids = pl.Series("x", rng.integers(0, int(n * 0.85), n))  # ~30% share a hash with another
df = pl.DataFrame(ids).select(
    pl.format("k{{}}", pl.int_range(n)).alias("key"),
    pl.format("{{}}-{{}}", pl.col("x"), pl.col("x") * 7919).alias("list_hash"))
df = df.with_columns(pl.col("list_hash").alias("pixel_list_hash"),
                     pl.col("list_hash").alias("text_hash"))
built = rss()
t = time.perf_counter()
g = exact_groups(df, "keep_one")
dt = time.perf_counter() - t
print(dt, rss() - built, built - base, df.estimated_size() / 2**20, g.height,
      g["group_id"].n_unique())
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=300)
    ap.add_argument("--groups", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        shards = build_shards(Path(d), args.mb)
        raw_read(shards)  # warm the page cache
        rows, t_raw = [], None
        for name, fn in [("raw read (baseline)", raw_read),
                         ("read + xxh3-128 of bytes", read_and_bytes_hash),
                         ("read + full hashing (decode, pixel, pHash)", read_and_full_hash)]:
            t, n = timed(fn, shards)
            t_raw = t_raw or t
            rows.append((name, n / t / 2**20, t_raw / t))
    print(f"\nshards: {len(shards)}, image bytes: {n / 2**20:.0f} MB")
    print(f"{'stage':<46}{'MB/s':>10}{'vs raw read':>14}")
    for name, mbs, ratio in rows:
        print(f"{name:<46}{mbs:>10.1f}{ratio:>14.2f}")
    out = subprocess.run([sys.executable, "-c", GROUP_CODE.format(n=args.groups)],
                         capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout.split()
    dt, peak, built, table = (float(x) for x in out[:4])
    print(f"\nexact_groups on {args.groups:,} synthetic samples ({table:.0f} MB table): "
          f"{dt:.2f} s, peak RSS +{peak:.0f} MB while grouping (table build +{built:.0f} MB); "
          f"{int(out[4]):,} samples in {int(out[5]):,} groups")


if __name__ == "__main__":
    main()
