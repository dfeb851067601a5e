"""Rephrase throughput with the local model (SmolLM2-135M-Instruct on CPU by default).

Run::

    HF_HUB_OFFLINE=1 .venv/bin/python bench/rephrase_throughput.py [--n 8] [--max-new-tokens 32]
        [--batch-sizes 1,4] [--model smollm2-135m-instruct] [--device cpu] [--threads 0]

Each sample has one assistant turn (a Wikipedia sentence with a number in it). Printed, one
table of samples/s and the ratio of time against the baseline measured in the same run:

- ``bare generate b=1``: only ``model.generate`` on the chat-templated prompts, one at a time
  (baseline, ratio 1.00).
- ``rephrase_samples b=K``: the whole step (prompt template, generation, output cleaning,
  fidelity check, cache writes) with an empty cache, ``K`` prompts per generate call.
- ``rephrase_samples (cached)``: the same samples again, every turn a cache hit.

Generation is greedy with at most ``--max-new-tokens`` new tokens per turn.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mm_assets.core.quality.lm import load_lm
from mm_assets.core.records import Sample
from mm_assets.core.storage import Store
from mm_assets.core.text.rephrase import (
    TEMPLATES,
    RephraseConfig,
    local_generator,
    rephrase_samples,
)


def number_samples(n: int) -> list[Sample]:
    """``n`` samples whose answer is a Wikipedia sentence holding a number."""
    path = REPO.parent / "shared" / "data" / "text_ref" / "LLaMA-Factory" / "data" / "wiki_demo.txt"
    sents = [s.strip() for s in re.split(r"(?<=[.!?])\s+", path.read_text())
             if 8 <= len(s.split()) <= 25 and re.search(r"\d", s) and "\n" not in s.strip()]
    return [Sample(f"s{i}", [{"from": "human", "value": "Tell me a fact."},
                             {"from": "gpt", "value": sents[i * 7 % len(sents)]}])
            for i in range(n)]


def bare_generate(lm, prompts: list[str], max_new_tokens: int) -> float:
    """Seconds for plain greedy ``generate`` on each chat-templated prompt, one at a time."""
    tok = lm.tokenizer
    encs = [tok(tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                        add_generation_prompt=True),
                return_tensors="pt", add_special_tokens=False).to(lm.device) for p in prompts]
    t0 = time.perf_counter()
    with torch.inference_mode():
        for enc in encs:
            lm.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                              pad_token_id=tok.pad_token_id)
    return time.perf_counter() - t0


def stage(lm, samples, cfg: RephraseConfig, store: Store) -> tuple[float, dict]:
    counts: dict = {}
    t0 = time.perf_counter()
    rephrase_samples(samples, local_generator(lm, cfg.max_new_tokens), lm.name, cfg, store,
                     counts)
    return time.perf_counter() - t0, counts


def main() -> None:
    ap = argparse.ArgumentParser(description="rephrase samples/s")
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch-sizes", default="1,4")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    lm = load_lm(args.model, args.device)
    samples = number_samples(args.n)
    prompts = [TEMPLATES["clear"].format(text=s.conversations[1]["value"]) for s in samples]
    bare_generate(lm, prompts[:1], 4)  # warm-up
    t_base = bare_generate(lm, prompts, args.max_new_tokens)
    rows = [("bare generate b=1", t_base, "")]
    with tempfile.TemporaryDirectory() as tmp:
        for b in [int(x) for x in args.batch_sizes.split(",")]:
            store = Store(str(Path(tmp) / f"b{b}"))
            cfg = RephraseConfig(max_new_tokens=args.max_new_tokens, batch_size=b)
            t, counts = stage(lm, samples, cfg, store)
            rows.append((f"rephrase_samples b={b}", t, counts))
            if b == int(args.batch_sizes.split(",")[0]):
                t2, counts2 = stage(lm, samples, cfg, store)
                cached = ("rephrase_samples (cached)", t2, counts2)
        rows.append(cached)
    print(f"model={lm.name} device={lm.device} threads={torch.get_num_threads()} "
          f"samples={len(samples)} max_new_tokens={args.max_new_tokens}")
    print(f"{'run':<28}{'seconds':>9}{'samples/s':>11}{'ratio':>7}  counts")
    for name, t, counts in rows:
        print(f"{name:<28}{t:>9.3f}{len(samples) / t:>11.2f}{t / t_base:>7.2f}  {counts}")


if __name__ == "__main__":
    main()
