"""Text-quality flags over ≥ 100k samples: samples/s against a plain read, and peak memory.

Usage: .venv/bin/python bench/bench_text_quality.py [--samples 100000] [--shard 2000] [--rounds 3]

Writes --samples raw samples (1 in 4 text-only, a small PNG on the others; questions, answers
and multiple-choice prompts of realistic length built from real ScienceQA / LLaVA turns in
../shared/data when present, else from a fixed word bank; ~5% carry a defect) in shards of
--shard. Per round, interleaved: the baseline reads every shard (``read_samples``); the
candidate reads every shard and flags it (``flag_rows``) into the per-shard Parquet table, as
the ``text_quality`` asset body does. Reports the median ratio of the rounds and the peak RSS
above the start of the candidate pass.
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
from mm_assets.core.quality.text_flags import FLAG_SCHEMA, TextQualityConfig, flag_rows
from mm_assets.core.records import Sample
from mm_assets.core.shards import read_samples, write_samples

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
        bank = "the a cat dog chart shows value rises falls table red blue big small".split()
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
        p = root / f"{s // per_shard:06d}.tar"
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


def flagged(paths: list[Path], out: Path, cfg: TextQualityConfig) -> int:
    n = 0
    for p in paths:
        with open(p, "rb") as f:
            samples = list(read_samples(f))
        pl.DataFrame(list(flag_rows(samples, cfg)), schema=FLAG_SCHEMA).write_parquet(
            out / f"{p.stem}.parquet")
        n += len(samples)
    return n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=100_000)
    ap.add_argument("--shard", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    cfg = TextQualityConfig()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = build(root, a.samples, a.shard)
        (root / "flags").mkdir()
        flagged(paths[:1], root / "flags", cfg)  # warm-up: imports, CLD2 tables
        ratios, rows = [], []
        for r in range(a.rounds):
            t = time.perf_counter()
            n = plain(paths)
            t_base = time.perf_counter() - t
            with Peak() as peak:
                t = time.perf_counter()
                flagged(paths, root / "flags", cfg)
                t_cand = time.perf_counter() - t
            ratios.append(t_base / t_cand)
            rows.append((r, n / t_base, n / t_cand, t_base / t_cand, peak.extra))
            print(f"round {r}: plain read {n / t_base:,.0f} samples/s, read + flags "
                  f"{n / t_cand:,.0f} samples/s, ratio {t_base / t_cand:.3f}×, "
                  f"peak RSS +{peak.extra:.0f} MB", flush=True)
        n_flags = pl.read_parquet(root / "flags" / "*.parquet")
        print(f"{a.samples:,} samples, {n_flags['key'].n_unique():,} flagged "
              f"({dict(n_flags['flag'].value_counts().iter_rows())})")
        print(f"median ratio (read + flags vs plain read): {statistics.median(ratios):.3f}×")


if __name__ == "__main__":
    main()
