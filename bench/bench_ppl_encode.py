"""Perplexity input building: batched chat-template encoding versus per-sample (today's way).

Run::

    nice -n 10 .venv/bin/python bench/bench_ppl_encode.py [--repeat 4] [--rounds 3]
        [--workers 0]

Samples: the real LLaVA conversations of ``../shared/data/llava`` (LLaVA-Instruct-100 from
LLaMA-Factory, 2-20 turns; the ScienceQA CQM-A set, 2 turns), each ``--repeat`` times. The
tokenizer is SmolLM2-135M-Instruct's (ChatML template with a default system prompt). Printed,
one table (best of ``--rounds`` alternated rounds, same process):

- ``per-sample encode_sample``: one ``apply_chat_template`` call per turn prefix, one tokenizer
  call and a Python mask loop per sample: the baseline, ratio 1.00;
- ``batched encode_samples``: what the stage runs (one template call and one tokenizer call per
  chunk, numpy mask), with ``--workers`` processes (0 = in process);

plus the ids/masks check (identical or the script exits 1) and ms per sample.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from transformers import AutoTokenizer

from mm_assets.core.quality.lm import resolve_lm_path
from mm_assets.core.quality.ppl import encode_sample
from mm_assets.core.quality.ppl_encode import encode_samples
from mm_assets.core.records import Sample

LLAVA = REPO.parent / "shared" / "data" / "llava"
FILES = ["LLaMA-Factory/data/llava_instruct_100.json",
         "LLaVA/playground/data/eval/scienceqa/llava_test_CQM-A.json"]


def real_samples(repeat: int, per_file: int = 400) -> list[Sample]:
    out = []
    for f in FILES:
        recs = json.loads((LLAVA / f).read_text())[:per_file]
        out += [Sample(f"{f}:{i}", r["conversations"]) for i, r in enumerate(recs)]
    return out * repeat


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--max-length", type=int, default=2048)
    a = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(resolve_lm_path("smollm2-135m-instruct"))
    samples = real_samples(a.repeat)
    turns = sum(len(s.conversations) for s in samples) / len(samples)
    ref = [encode_sample(s, tok, a.max_length) for s in samples]
    new = encode_samples(samples, tok, a.max_length, a.workers)
    same = all(x[0] == y[0] and x[1] == y[1].tolist() and x[2] == y[2]
               for x, y in zip(ref, new, strict=True))
    best = {"per-sample": float("inf"), "batched": float("inf")}
    for _ in range(a.rounds):
        t = time.perf_counter()
        for s in samples:
            encode_sample(s, tok, a.max_length)
        best["per-sample"] = min(best["per-sample"], time.perf_counter() - t)
        t = time.perf_counter()
        encode_samples(samples, tok, a.max_length, a.workers)
        best["batched"] = min(best["batched"], time.perf_counter() - t)
    n = len(samples)
    tokens = sum(len(e[0]) for e in new)
    print(f"{n} samples, {turns:.1f} turns and {tokens / n:.0f} tokens per sample on average, "
          f"cores {os.cpu_count()}, workers {a.workers}; ids and masks identical: {same}")
    print("| way | s | ms per sample | ratio vs per-sample |\n|---|---|---|---|")
    base = best["per-sample"]
    for name, label in (("per-sample", "per-sample `encode_sample` (baseline)"),
                        ("batched", "batched `encode_samples`")):
        print(f"| {label} | {best[name]:.2f} | {best[name] / n * 1e3:.3f} | "
              f"{base / best[name]:.2f}x |")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
