"""Perplexity of instruction samples under a causal LM, and decile edges.

For each sample: the mean negative log-likelihood (nats/token) of the assistant tokens given the
preceding conversation rendered with the model's chat template (the standard for instruction
data), its perplexity ``exp(nll)``, the assistant token count, and the same over all tokens of the
rendered text. Text longer than ``max_length`` tokens is truncated on the right (later tokens
are not scored; ``truncated`` says so). A sample without assistant text gets no score and the
reason ``no_assistant_text`` (never a score that passes a filter).

Batches are built from length-sorted samples under a token budget, so padding stays small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from .lm import LoadedLM
from .records import ASSISTANT, Sample

_ROLE = {"human": "user", "gpt": "assistant", "system": "system"}


@dataclass(frozen=True, slots=True)
class PplConfig:
    """Perplexity settings.

    Attributes:
        max_length: tokens per sample at most (right-truncated beyond).
        batch_tokens: padded tokens per forward batch at most.
    """

    max_length: int = 2048
    batch_tokens: int = 8192

    def __post_init__(self) -> None:
        if self.max_length < 8 or self.batch_tokens < self.max_length:
            raise ValueError(f"need max_length >= 8 and batch_tokens >= max_length: {self}")


def encode_sample(s: Sample, tok, max_length: int) -> tuple[list[int], list[bool], bool]:
    """Token ids, assistant mask and truncation flag for one sample (chat template)."""
    msgs = [{"role": _ROLE.get(t["from"], "user"), "content": t["value"]} for t in s.conversations]
    spans, prev = [], ""
    for i in range(len(msgs)):
        text = tok.apply_chat_template(msgs[: i + 1], tokenize=False)
        if msgs[i]["role"] == "assistant":
            spans.append((len(prev), len(text)))
        prev = text
    enc = tok(prev, add_special_tokens=False, return_offsets_mapping=True)
    ids, offs = enc["input_ids"], enc["offset_mapping"]
    mask = [any(a <= o[0] < b for a, b in spans) for o in offs]
    truncated = len(ids) > max_length
    return ids[:max_length], mask[:max_length], truncated


@torch.inference_mode()
def _nll_batch(lm: LoadedLM, seqs: list[list[int]]) -> list[np.ndarray]:
    width = max(len(x) for x in seqs)
    pad = lm.tokenizer.pad_token_id
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    att = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, x in enumerate(seqs):
        ids[i, : len(x)] = torch.tensor(x)
        att[i, : len(x)] = 1
    ids, att = ids.to(lm.device), att.to(lm.device)
    logits = lm.model(input_ids=ids, attention_mask=att).logits.float()
    logp = torch.log_softmax(logits[:, :-1], dim=-1)
    nll = -logp.gather(-1, ids[:, 1:, None])[..., 0]  # (B, W-1): nll of token t+1
    return [nll[i, : len(x) - 1].cpu().numpy() for i, x in enumerate(seqs)]


def score_samples(samples: list[Sample], lm: LoadedLM, cfg: PplConfig) -> pl.DataFrame:
    """Perplexity table for ``samples``.

    Returns:
        DataFrame ``key, n_tokens, n_assistant_tokens, nll, ppl, text_nll, text_ppl,
        truncated, reason``; ``nll``/``ppl`` null with a ``reason`` when nothing is scorable.
    """
    enc = [encode_sample(s, lm.tokenizer, cfg.max_length) for s in samples]
    order = sorted(range(len(samples)), key=lambda i: len(enc[i][0]))
    nlls: dict[int, np.ndarray] = {}
    batch: list[int] = []
    for i in order + [None]:
        if i is not None and (not batch or (len(batch) + 1) * len(enc[i][0]) <= cfg.batch_tokens):
            batch.append(i)
            continue
        if batch:
            for j, v in zip(batch, _nll_batch(lm, [enc[j][0] for j in batch]), strict=True):
                nlls[j] = v
        batch = [i] if i is not None else []
    rows = []
    for i, s in enumerate(samples):
        ids, mask, trunc = enc[i]
        per_tok = nlls.get(i, np.zeros(0))
        amask = np.array(mask[1:], dtype=bool)
        has_asst = any(t["from"] == ASSISTANT and t["value"].strip() for t in s.conversations)
        row = {"key": s.key, "n_tokens": len(ids), "n_assistant_tokens": int(amask.sum()),
               "nll": None, "ppl": None, "text_nll": None, "text_ppl": None,
               "truncated": trunc, "reason": None}
        if per_tok.size:
            row["text_nll"] = float(per_tok.mean())
            row["text_ppl"] = math.exp(row["text_nll"])
        if has_asst and amask.any():
            row["nll"] = float(per_tok[amask].mean())
            row["ppl"] = math.exp(row["nll"])
        else:
            row["reason"] = "no_assistant_text"
        rows.append(row)
    return pl.DataFrame(rows, schema={
        "key": pl.Utf8, "n_tokens": pl.Int32, "n_assistant_tokens": pl.Int32, "nll": pl.Float64,
        "ppl": pl.Float64, "text_nll": pl.Float64, "text_ppl": pl.Float64,
        "truncated": pl.Boolean, "reason": pl.Utf8})


def decile_edges(values: np.ndarray) -> np.ndarray:
    """The 9 inner decile edges (numpy's linear quantiles at 0.1 … 0.9) of finite values."""
    v = values[np.isfinite(values)]
    if v.size == 0:
        return np.full(9, np.nan)
    return np.quantile(v, np.linspace(0.1, 0.9, 9))


def assign_deciles(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Decile 0..9 per value (``v < edges[0]`` → 0, ``v >= edges[8]`` → 9); -1 for NaN."""
    d = np.searchsorted(edges, values, side="right").astype(np.int16)
    d[~np.isfinite(values)] = -1
    return d
