"""Text-quality flags over ≥ 100k samples: samples/s against a plain read, and peak memory.

Usage: .venv/bin/python bench/bench_text_quality.py [--samples 100000] [--shard 2000] [--rounds 3]
    [--workers 2]

Writes --samples raw samples (1 in 4 text-only, a small PNG on the others; questions, answers
and multiple-choice prompts of realistic length built from real ScienceQA / LLaVA turns in
../shared/data when present, else from a fixed word bank; ~5% carry a defect) in shards of
--shard under ``raw_shards/``. Per round, interleaved: the baseline reads every shard in this
process (``read_samples``); candidate 1 runs the asset's shard function (``flag_shard``: read,
flag, write ``text_quality/{shard}.parquet``) over every shard in this process; candidate 2 runs
it in --workers processes (``map_shards``, as a batched ``text_quality`` run does). Reports the
median ratios of the rounds and the peak RSS above the start of candidate 1.
"""

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench._rss import Peak
from mm_assets.assets.text_quality import flag_shard
from mm_assets.core.parallel import map_shards
from mm_assets.core.quality.text_flags import TextQualityConfig
from mm_assets.core.records import Sample
from mm_assets.core.shards import read_samples, write_samples
from mm_assets.core.storage import Store

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
DEFECTS = ["<|im_end|>", " and the", "\ufffd", "<br>", " $x = 1", "```python\nx = 1"]


def turns() -> list[tuple[str, str]]:
    f = SHARED / "llava/LLaVA/playground/data/eval/scienceqa/llava_test_CQM-A.json"
    g = SHARED / "llava/LLaVA/playground/data/coco2014_val_gpt4_qa_30x3.jsonl"
    pairs = []
    if f.exists():
        pairs += [(r["conversations"][0]["value"].replace("<image>\n", ""),
                   r["conversations"][1]["value"]) for r in json.loads(f.read_text())]
    if g.exists():
        pairs += [(r["instruction"], r["output"]) for r in map(json.loads, g.open())]
    if not pairs:
        rng = np.random.default_rng(0)
        bank = ["the", "a", "cat", "dog", "chart", "shows", "value", "rises", "falls", "table", "red", "blue", "big", "small"]
        pairs = [(" ".join(rng.choice(bank, 12)) + "?", " ".join(rng.choice(bank, 40)) + ".")
                 for _ in range(500)]
    return pairs


def build(root: Path, n: int, per_shard: int) -> list[Path]:
    rng, pairs = np.random.default_rng(0), turns()
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(buf, "PNG")
    png, paths = buf.getvalue(), []
    for s in range(0, n, per_shard):
        samples = []
        for i in range(s, min(n, s + per_shard)):
            q, a = pairs[i % len(pairs)]
            if i % 20 == 0:
                a += DEFECTS[(i // 20) % len(DEFECTS)]
            img = [] if i % 4 == 0 else [png]
            q = ("<image>\n" + q) if img else q
            samples.append(Sample(f"k{i:07d}", [{"from": "human", "value": q},
                                                {"from": "gpt", "value": a}],
                                  img, ["png"] * len(img), "bench"))
        (root / "raw_shards").mkdir(exist_ok=True)
        p = root / "raw_shards" / f"{s // per_shard:06d}.tar"
        with open(p, "wb") as f:
            write_samples(f, samples)
        paths.append(p)
    return paths


def plain(paths: list[Path]) -> int:
    n = 0
    for p in paths:
        with open(p, "rb") as f:
            n += sum(1 for _ in read_samples(f))
    return n


def flagged(store: Store, shards: list[str], cfg: TextQualityConfig, workers: int) -> int:
    return sum(c.n_in for c, _ in map_shards(flag_shard, shards, (store, cfg), workers))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--shard", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    a = ap.parse_args()
    cfg = TextQualityConfig()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = build(root, a.samples, a.shard)
        store, shards = Store(str(root)), [p.stem for p in paths]
        flagged(store, shards[:1], cfg, 1)  # warm-up: imports, CLD2 tables
        r1, r2 = [], []
        for r in range(a.rounds):
            t = time.perf_counter()
            n = plain(paths)
            t_base = time.perf_counter() - t
            with Peak() as peak:
                t = time.perf_counter()
                flagged(store, shards, cfg, 1)
                t_one = time.perf_counter() - t
            t = time.perf_counter()
            flagged(store, shards, cfg, a.workers)
            t_par = time.perf_counter() - t
            r1.append(t_base / t_one)
            r2.append(t_base / t_par)
            print(f"round {r}: plain read {n / t_base:,.0f} samples/s; read + flags + write: "
                  f"1 process {n / t_one:,.0f} samples/s ({t_base / t_one:.3f}×), "
                  f"{a.workers} processes {n / t_par:,.0f} samples/s ({t_base / t_par:.3f}×); "
                  f"peak RSS +{peak.extra:.0f} MB", flush=True)
        flags = pl.read_parquet(root / "text_quality" / "*.parquet")
        print(f"{a.samples:,} samples, {flags['key'].n_unique():,} flagged "
              f"({dict(flags['flag'].value_counts().iter_rows())})")
        print(f"median ratio vs plain read: 1 process {statistics.median(r1):.3f}×, "
              f"{a.workers} processes {statistics.median(r2):.3f}×")


if __name__ == "__main__":
    main()
