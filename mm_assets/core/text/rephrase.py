"""Rephrasing assistant turns with a language model, cached, with a fidelity check.

Only assistant turns are rewritten (never human turns or image tokens). Leaked chat-template
tokens are stripped and every rewrite is checked by :func:`~mm_assets.core.text.fidelity.
fidelity_problem` (truncation at the token limit, prompt echo, code, LaTeX, numbers, options,
negations, hedges, repetition, length change); a failed check keeps the original text and
counts its reason (``fidelity_truncated``, ``fidelity_echo``, ...); a turn the backend failed on
keeps the original and counts
``backend_error`` (not cached, so a re-run tries it again). A cache keyed by
``xxh3(model | template | input)`` makes re-runs free and lets a killed run resume where it
stopped.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import torch
import xxhash

from mm_assets.core import layout
from mm_assets.core.progress import Progress
from mm_assets.core.quality.lm import LoadedLM
from mm_assets.core.records import ASSISTANT, Sample
from mm_assets.core.storage import Store
from mm_assets.core.text.fidelity import Completion, fidelity_problem

__all__ = [
    "TEMPLATES",
    "Completion",
    "RephraseConfig",
    "cache_key",
    "clean_output",
    "fidelity_problem",
    "local_generator",
    "rephrase_samples",
]

TEMPLATES = {
    "clear": ("Rewrite the answer below so it is clear and well written. Keep every number, "
              "option letter, formula and name exactly as it is. Reply with the rewritten "
              "answer only.\n\nAnswer:\n{text}"),
    "wikipedia": ("Rewrite the answer below in the neutral, factual style of a Wikipedia "
                  "article. Keep every number, option letter, formula and name. Reply with the "
                  "rewritten answer only.\n\nAnswer:\n{text}"),
    "qa": ("Rewrite the answer below as a short, direct reply to a question. Keep every "
           "number, option letter, formula and name. Reply with the rewritten answer only."
           "\n\nAnswer:\n{text}"),
}
_LEAK = re.compile(r"<\|[a-z_]+\|>|</?s>|\[/?INST\]")
_ROLE_PREFIX = re.compile(r"^\s*(assistant|user|system)\s*\n")
def clean_output(text: str) -> str:
    """Strip leaked chat-template tokens and surrounding whitespace."""
    return _ROLE_PREFIX.sub("", _LEAK.sub("", text)).strip()


@dataclass(frozen=True, slots=True)
class RephraseConfig:
    """Attributes:
    template: a name in :data:`TEMPLATES`.
    max_new_tokens: generation cap per turn (tokens).
    batch_size: prompts per generate call.
    max_samples: rephrase at most this many samples (``None``: all); the rest pass unchanged.
    """

    template: str = "clear"
    max_new_tokens: int = 256
    batch_size: int = 8
    max_samples: int | None = None

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            raise ValueError(f"unknown template {self.template!r}; have {sorted(TEMPLATES)}")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("max_new_tokens and batch_size must be >= 1")


def local_generator(lm: LoadedLM, max_new_tokens: int
                    ) -> Callable[[list[str]], list[Completion]]:
    """Batched greedy generation with the model's chat template (left padding); a completion
    with no end-of-sequence token within ``max_new_tokens`` is marked ``truncated``."""
    tok = lm.tokenizer

    @torch.inference_mode()
    def generate(prompts: list[str]) -> list[str]:
        texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                         add_generation_prompt=True) for p in prompts]
        tok.padding_side = "left"
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(lm.device)
        out = lm.model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                pad_token_id=tok.pad_token_id)
        gen = out[:, enc["input_ids"].shape[1]:]
        eos = {tok.eos_token_id, tok.pad_token_id} - {None}
        ended = [bool(eos & set(row.tolist())) or len(row) < max_new_tokens for row in gen]
        texts = tok.batch_decode(gen, skip_special_tokens=True)
        return [Completion(t, truncated=not e) for t, e in zip(texts, ended, strict=True)]

    return generate


def cache_key(model: str, template: str, text: str) -> str:
    return xxhash.xxh3_128_hexdigest(f"{model}\x00{template}\x00{text}".encode())


def rephrase_samples(samples: list[Sample], generate: Callable[[list[str]], list[str | None]],
                     model_name: str, cfg: RephraseConfig, cache: Store,
                     counts: dict[str, int]) -> list[Sample]:
    """Rewrite assistant turns of the first ``cfg.max_samples`` samples.

    Args:
        samples: input samples (not modified).
        generate: prompts -> raw completions (``str``, or :class:`Completion` carrying
            ``truncated``); ``None`` for a prompt the backend failed on (that turn keeps its
            original text and counts ``backend_error``).
        model_name: part of the cache key.
        cfg: settings.
        cache: store whose ``cache/rephrase/`` holds one JSON per rewrite.
        counts: receives ``rephrased``, ``cache_hits``, ``backend_error`` and failed-check
            reasons (per assistant turn).

    Returns:
        New samples, same keys and order; ``metadata["rephrased"]`` per sample.
    """
    limit = len(samples) if cfg.max_samples is None else min(cfg.max_samples, len(samples))
    jobs = [(i, j, t["value"]) for i, s in enumerate(samples[:limit])
            for j, t in enumerate(s.conversations) if t["from"] == ASSISTANT]
    results: dict[tuple[int, int], Completion] = {}
    todo = []
    for i, j, text in jobs:
        rel = layout.rephrase_cache(cache_key(model_name, cfg.template, text))
        if cache.exists(rel):
            hit = cache.read_json(rel)
            results[(i, j)] = Completion(hit["output"], bool(hit.get("truncated")))
            counts["cache_hits"] = counts.get("cache_hits", 0) + 1
        else:
            todo.append((i, j, text, rel))
    progress = Progress("rephrase", len(todo), "turns")
    for b in range(0, len(todo), cfg.batch_size):
        chunk = todo[b:b + cfg.batch_size]
        outs = generate([TEMPLATES[cfg.template].format(text=t) for _, _, t, _ in chunk])
        progress.add(len(chunk))
        for (i, j, _, rel), out in zip(chunk, outs, strict=True):
            if out is None:  # the backend failed for good: keep the original, not cached
                counts["backend_error"] = counts.get("backend_error", 0) + 1
                continue
            truncated = bool(getattr(out, "truncated", False))
            results[(i, j)] = Completion(clean_output(out), truncated)
            cache.write_json(rel, {"output": str(results[(i, j)]), "truncated": truncated,
                                   "model": model_name, "template": cfg.template})
    new = []
    for i, s in enumerate(samples):
        conv = [dict(t) for t in s.conversations]
        done = 0
        for j, t in enumerate(conv):
            if (i, j) not in results:
                continue
            rewrite = results[(i, j)]
            problem = fidelity_problem(t["value"], rewrite, rewrite.truncated)
            if problem:
                counts[problem] = counts.get(problem, 0) + 1
            else:
                t["value"], done = str(rewrite), done + 1
                counts["rephrased"] = counts.get("rephrased", 0) + 1
        meta = dict(s.metadata, rephrased=done, rephrase_template=cfg.template if done else None)
        new.append(Sample(s.key, conv, s.images, s.image_exts, s.source, meta))
    return new
