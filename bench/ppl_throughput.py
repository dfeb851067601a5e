"""Perplexity throughput: the ``ppl_scores`` stage versus the bare model forward.

Run::

    HF_HUB_OFFLINE=1 .venv/bin/python bench/ppl_throughput.py [--n 48] [--batch-tokens 2048]
        [--model smollm2-135m-instruct] [--device cpu] [--threads 0] [--repeats 3]

Samples are instruction pairs built from ``../shared/data/text_ref/LLaMA-Factory/data/
wiki_demo.txt`` (1-4 Wikipedia sentences per answer, so lengths vary). Printed, one table:

- ``bare forward (sorted)``: only ``model(input_ids, attention_mask)`` on exactly the padded
  token batches :func:`~mm_assets.core.quality.ppl.score_samples` builds (length-sorted, token budget):
  the baseline, ratio 1.00.
- ``score_samples (stage)``: the whole stage (chat-template encoding, forward, per-token NLL,
  table); goal: ratio <= 1.1.
- ``bare forward (input order)``: the same budget without length sorting, to show the padding
  cost.

Tokens/s counts real (unpadded) tokens; ``padding`` is the padded share of the batch slots.
Times are the median of ``--repeats`` interleaved rounds after one warm-up round, all in this
process.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mm_assets.core.quality.lm import load_lm
from mm_assets.core.quality.ppl import (
    PplConfig,
    encode_sample,
    length_batches,
    pad_batch,
    score_samples,
)
from mm_assets.core.records import Sample


def wiki_samples(n: int, seed: int = 0) -> list[Sample]:
    """``n`` samples whose answers are 1-4 consecutive Wikipedia sentences."""
    path = REPO.parent / "shared" / "data" / "text_ref" / "LLaMA-Factory" / "data" / "wiki_demo.txt"
    sents = [s.strip() for s in re.split(r"(?<=[.!?])\s+", path.read_text())
             if 8 <= len(s.split()) <= 40 and "\n" not in s.strip()]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k, start = int(rng.integers(1, 5)), int(rng.integers(0, len(sents) - 4))
        out.append(Sample(f"s{i}", [
            {"from": "human", "value": "Write a short encyclopedia paragraph."},
            {"from": "gpt", "value": " ".join(sents[start:start + k])}]))
    return out


def timed(fns: list, repeats: int) -> list[float]:
    """Median seconds of each ``fn()`` over ``repeats`` rounds after one warm-up round; the
    functions run interleaved, so load from other processes hits them alike."""
    times: list[list[float]] = [[] for _ in fns]
    for r in range(repeats + 1):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            if r:
                times[k].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def bare_forward(lm, seqs: list[list[int]], batches: list[list[int]]):
    """Closure running only the model forward on the padded batches (tensors built once)."""
    tensors = [tuple(t.to(lm.device) for t in pad_batch([seqs[i] for i in b],
                                                         lm.tokenizer.pad_token_id))
               for b in batches]

    @torch.inference_mode()
    def run() -> None:
        for ids, att in tensors:
            lm.model(input_ids=ids, attention_mask=att)
        if lm.device.startswith("cuda"):
            torch.cuda.synchronize()

    return run


def padding_share(lengths: list[int], batches: list[list[int]]) -> float:
    slots = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return 1.0 - sum(lengths) / slots


def main() -> None:
    ap = argparse.ArgumentParser(description="perplexity stage vs bare forward")
    ap.add_argument("--n", type=int, default=48)
    ap.add_argument("--batch-tokens", type=int, default=2048)
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = load_lm(args.model, args.device)
    cfg = PplConfig(max_length=512, batch_tokens=args.batch_tokens)
    samples = wiki_samples(args.n)
    seqs = [encode_sample(s, lm.tokenizer, cfg.max_length)[0] for s in samples]
    lengths = [len(x) for x in seqs]
    tokens = sum(lengths)
    sorted_b = length_batches(lengths, cfg.batch_tokens)
    unsorted_b = length_batches(lengths, cfg.batch_tokens, sort=False)
    t_bare, t_stage, t_unsorted = timed([
        bare_forward(lm, seqs, sorted_b), lambda: score_samples(samples, lm, cfg),
        bare_forward(lm, seqs, unsorted_b)], args.repeats)
    print(f"model={lm.name} device={lm.device} threads={torch.get_num_threads()} "
          f"samples={len(samples)} tokens={tokens} (min {min(lengths)}, max {max(lengths)}) "
          f"batch_tokens={cfg.batch_tokens} repeats={args.repeats}")
    print(f"{'run':<28}{'batches':>8}{'padding':>9}{'seconds':>9}{'tokens/s':>10}"
          f"{'ratio':>7}")
    rows = [("bare forward (sorted)", sorted_b, t_bare),
            ("score_samples (stage)", sorted_b, t_stage),
            ("bare forward (input order)", unsorted_b, t_unsorted)]
    for name, b, t in rows:
        print(f"{name:<28}{len(b):>8}{padding_share(lengths, b):>9.1%}{t:>9.3f}"
              f"{tokens / t:>10.0f}{t / t_bare:>7.2f}")


if __name__ == "__main__":
    main()
