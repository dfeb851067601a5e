"""Writing a 100k-sample mixture from curated shards: samples/s and peak memory.

Usage: .venv/bin/python bench/bench_mixture.py [--samples 100000] [--shard 1000]

Builds a temp root with --samples curated samples (a small PNG each, 1 in 4 text-only) in
shards of --shard, a clusters table and a recipe drawing all of them (text:multimodal at their
natural ratio), then materializes the real ``mixtures`` asset (ephemeral Dagster instance).
Baseline in the same run: one plain read of the same curated shards. Peak RSS is sampled every
5 ms over the asset run.
"""

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dagster import DagsterInstance, materialize

from bench._rss import Peak
from mm_assets.core.records import Sample
from mm_assets.core.shards import read_samples, write_samples
from mm_assets.core.storage import Store
from mm_assets.definitions import ALL_ASSETS, default_resources
from resources.storage import StorageResource


def build(root: Path, n: int, per_shard: int) -> None:
    rng = np.random.default_rng(0)
    pngs = []
    for i in range(64):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(buf, "PNG")
        pngs.append(buf.getvalue())
    keys, clusters = [], []
    for s in range(0, n, per_shard):
        samples = []
        for i in range(s, min(n, s + per_shard)):
            conv = [{"from": "human", "value": f"Question {i}?"},
                    {"from": "gpt", "value": f"Answer number {i} is {i * 7}."}]
            img = [] if i % 4 == 0 else [pngs[i % 64]]
            if img:
                conv[0]["value"] = "<image>\n" + conv[0]["value"]
            samples.append(Sample(f"k{i:07d}", conv, img, ["png"] * len(img), "bench",
                                  {"ppl_decile": i % 10}))
            keys.append(f"k{i:07d}")
            clusters.append(i % 16)
        (root / "curated").mkdir(parents=True, exist_ok=True)
        with open(root / "curated" / f"{s // per_shard:06d}.tar", "wb") as f:
            write_samples(f, samples)
    Store(str(root)).write_parquet("clusters/assignments.parquet", pl.DataFrame({
        "key": keys, "space": ["image" if i % 4 else "text" for i in range(n)],
        "cluster": clusters, "distance": [0.0] * n}))
    (root / "recipes").mkdir()
    (root / "recipes" / "bench.yaml").write_text(
        "name: bench\nsource: curated\nseed: 0\nshard_size: 5000\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--shard", type=int, default=1000)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        build(root, a.samples, a.shard)
        t = time.perf_counter()
        n = sum(1 for p in sorted((root / "curated").glob("*.tar"))
                for _ in read_samples(open(p, "rb")))
        t_read = time.perf_counter() - t
        instance = DagsterInstance.ephemeral()
        instance.add_dynamic_partitions("recipes", ["bench"])
        with Peak() as p:
            t = time.perf_counter()
            res = materialize(ALL_ASSETS, selection=["mixtures"], partition_key="bench",
                              instance=instance, resources={**default_resources(),
                                                            "storage": StorageResource(root=d)})
            t_mix = time.perf_counter() - t
        assert res.success
        meta = res.asset_materializations_for_node("mixtures")[0].metadata
        out = meta["samples_written"].value
    print(f"{'stage':<44}{'samples/s':>12}{'seconds':>10}{'vs read':>10}")
    print(f"{'read curated shards (baseline)':<44}{n / t_read:>12.0f}{t_read:>10.1f}{1.0:>10.2f}")
    print(f"{'mixtures asset (2 reads, tokens, spool, write)':<44}{out / t_mix:>12.0f}{t_mix:>10.1f}"
          f"{t_read / t_mix:>10.2f}")
    print(f"peak RSS during the asset: +{p.extra:.0f} MB over {p.base:.0f} MB "
          f"({out:,} samples written)")


if __name__ == "__main__":
    main()
