"""Prepared GPU check: language-model tokens/s for perplexity and rephrasing (0.5B class).

Usage on a GPU machine (bf16 on CUDA; dtype auto)::

    python bench/gpu_lm_tokens.py /models/Qwen2.5-0.5B-Instruct --device cuda --n 1024
    python bench/gpu_lm_tokens.py Qwen/Qwen2.5-0.5B-Instruct --device cuda   # hub id (cached)
    # no weights at hand (throughput does not depend on weight values): a randomly
    # initialised Qwen2.5-0.5B architecture with any tokenizer folder
    python bench/gpu_lm_tokens.py --random-init qwen2.5-0.5b --tokenizer /models/tok --device cuda

Here (CPU smoke run with the embedded SmolLM2-135M-Instruct)::

    HF_HUB_OFFLINE=1 .venv/bin/python bench/gpu_lm_tokens.py smollm2-135m-instruct --device cpu \\
        --n 8 --gen-samples 2 --gen-tokens 8 --repeats 1

Needs torch, transformers and polars (the stage code); on a machine without polars, carry its
wheel. Text: ``../shared/data/text_ref/LLaMA-Factory/data/wiki_demo.txt`` when present, else
synthetic sentences. Prints one table: bare forward tokens/s on the stage's length-sorted
batches (baseline), ``score_samples`` tokens/s and its ratio, batched greedy generation
(as ``local_generator``, fixed length) new tokens/s, and peak GPU memory.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ppl_throughput import bare_forward, padding_share, timed, wiki_samples

from mm_assets.core.quality.lm import LoadedLM, load_lm, resolve_lm_path
from mm_assets.core.quality.ppl import PplConfig, encode_sample, length_batches, score_samples
from mm_assets.core.records import Sample

# Qwen2.5-0.5B-Instruct's architecture (494M parameters), for --random-init.
ARCHS = {"qwen2.5-0.5b": {
    "model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864,
    "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
    "vocab_size": 151936, "max_position_embeddings": 32768, "rope_theta": 1e6,
    "rms_norm_eps": 1e-6, "tie_word_embeddings": True}}


def random_init_lm(arch: str, tokenizer: str, device: str, dtype: torch.dtype) -> LoadedLM:
    """A randomly initialised model of a known architecture with a real tokenizer."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    spec = dict(ARCHS[arch])
    cfg = AutoConfig.for_model(spec.pop("model_type"), **spec)
    model = AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    tok = AutoTokenizer.from_pretrained(tokenizer)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return LoadedLM(f"random-init:{arch}", model.eval().to(device), tok, device)


def synthetic_samples(n: int) -> list[Sample]:
    words = ["the", "river", "city", "museum", "was", "founded", "by", "merchants", "who",
             "traded", "salt", "and", "grain"]
    return [Sample(f"s{i}", [{"from": "human", "value": "Write a short paragraph."},
                             {"from": "gpt", "value": " ".join(
                                 words[(i * 7 + j) % len(words)] for j in range(20 + i % 80))}])
            for i in range(n)]


@torch.inference_mode()
def generate_rate(lm: LoadedLM, samples: list[Sample], new_tokens: int) -> tuple[float, int]:
    """Seconds and new tokens for one batched greedy generate of exactly ``new_tokens`` per
    prompt (chat template, left padding, as :func:`~mm_assets.core.text.rephrase.local_generator`)."""
    tok = lm.tokenizer
    texts = [tok.apply_chat_template([{"role": "user", "content": s.conversations[1]["value"]}],
                                     tokenize=False, add_generation_prompt=True) for s in samples]
    tok.padding_side = "left"
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(lm.device)
    kw = {"do_sample": False, "pad_token_id": tok.pad_token_id}
    lm.model.generate(**enc, max_new_tokens=2, **kw)  # warm-up
    t0 = time.perf_counter()
    out = lm.model.generate(**enc, max_new_tokens=new_tokens, min_new_tokens=new_tokens, **kw)
    if lm.device.startswith("cuda"):
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    return dt, out[:, enc["input_ids"].shape[1]:].numel()


def main() -> None:
    ap = argparse.ArgumentParser(description="LM tokens/s (perplexity and generation)")
    ap.add_argument("model", nargs="?", default="smollm2-135m-instruct",
                    help="local folder, hub id, gguf:PATH or smollm2-135m-instruct")
    ap.add_argument("--random-init", choices=sorted(ARCHS), default=None)
    ap.add_argument("--tokenizer", default=None, help="tokenizer folder for --random-init")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--n", type=int, default=1024, help="samples scored")
    ap.add_argument("--batch-tokens", type=int, default=16384)
    ap.add_argument("--gen-samples", type=int, default=64)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    dtype = torch.bfloat16 if a.device.startswith("cuda") else torch.float32
    if a.random_init:
        lm = random_init_lm(a.random_init, a.tokenizer or resolve_lm_path(a.model), a.device,
                            dtype)
    else:
        lm = load_lm(a.model, a.device)
    try:
        samples = wiki_samples(a.n)
    except FileNotFoundError:
        samples = synthetic_samples(a.n)
    cfg = PplConfig(max_length=1024, batch_tokens=a.batch_tokens)
    seqs = [encode_sample(s, lm.tokenizer, cfg.max_length)[0] for s in samples]
    lengths = [len(x) for x in seqs]
    batches = length_batches(lengths, cfg.batch_tokens)
    t_bare, t_stage = timed([bare_forward(lm, seqs, batches),
                             lambda: score_samples(samples, lm, cfg)], a.repeats)
    t_gen, n_gen = generate_rate(lm, samples[: a.gen_samples], a.gen_tokens)
    params = sum(p.numel() for p in lm.model.parameters()) / 1e6
    mem = torch.cuda.max_memory_allocated() / 2**30 if a.device.startswith("cuda") else 0.0
    print(f"model={lm.name} params={params:.0f}M device={lm.device} "
          f"dtype={next(lm.model.parameters()).dtype} samples={len(samples)} "
          f"tokens={sum(lengths)} batch_tokens={cfg.batch_tokens} "
          f"padding={padding_share(lengths, batches):.1%} peak_gpu_mem={mem:.2f}GiB")
    print(f"{'run':<34}{'seconds':>9}{'tokens/s':>11}{'ratio':>7}")
    print(f"{'bare forward (baseline)':<34}{t_bare:>9.3f}{sum(lengths) / t_bare:>11.0f}"
          f"{1.0:>7.2f}")
    print(f"{'score_samples (stage)':<34}{t_stage:>9.3f}{sum(lengths) / t_stage:>11.0f}"
          f"{t_stage / t_bare:>7.2f}")
    print(f"{f'generate b={a.gen_samples}, new tokens':<34}{t_gen:>9.3f}{n_gen / t_gen:>11.0f}"
          f"{'':>7}")


if __name__ == "__main__":
    main()
