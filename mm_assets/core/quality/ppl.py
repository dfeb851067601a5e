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
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from mm_assets.core import schemas
from mm_assets.core.progress import Progress
from mm_assets.core.quality.lm import LoadedLM, load_lm
from mm_assets.core.quality.ppl_encode import auto_workers, encode_samples, messages
from mm_assets.core.records import ASSISTANT, Sample

PPL_SCHEMA = schemas.PPL_SCORES


@dataclass(frozen=True, slots=True)
class PplConfig:
    """Perplexity settings.

    Attributes:
        max_length: tokens per sample at most (right-truncated beyond).
        batch_tokens: padded tokens per forward batch at most.
        encode_workers: processes rendering chat templates and tokenizing
            (:func:`~mm_assets.core.quality.ppl_encode.encode_samples`); ``-1`` (default) =
            auto: ``min(8, cores - 1)`` on CUDA so the GPU does not wait on one core, 0 (this
            process) on CPU where the forward already uses every core.
    """

    max_length: int = 2048
    batch_tokens: int = 8192
    encode_workers: int = -1

    def __post_init__(self) -> None:
        if self.max_length < 8 or self.batch_tokens < self.max_length:
            raise ValueError(f"need max_length >= 8 and batch_tokens >= max_length: {self}")
        if self.encode_workers < -1:
            raise ValueError(f"encode_workers must be >= -1 (-1 = auto): {self}")


def encode_sample(s: Sample, tok, max_length: int) -> tuple[list[int], list[bool], bool]:
    """Token ids, assistant mask and truncation flag for one sample (chat template).

    The per-sample reference (one template call per turn prefix, a Python mask loop: ~2 ms per
    multi-turn sample); the stage uses the batched
    :func:`~mm_assets.core.quality.ppl_encode.encode_samples`, which gives the same result.
    """
    msgs = messages(s)
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


def length_batches(lengths: list[int], batch_tokens: int, sort: bool = True
                   ) -> list[list[int]]:
    """Group sample indices into batches of at most ``batch_tokens`` padded tokens.

    Args:
        lengths: tokens per sample.
        batch_tokens: cap on ``rows * longest row`` per batch (a longer sample goes alone).
        sort: visit samples by increasing length (padding stays small) instead of input order.

    Returns:
        Lists of indices into ``lengths``, each a batch.
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__) if sort else range(len(lengths))
    batches: list[list[int]] = []
    batch: list[int] = []
    width = 0
    for i in order:
        w = max(width, lengths[i])
        if batch and (len(batch) + 1) * w > batch_tokens:
            batches.append(batch)
            batch, w = [], lengths[i]
        batch.append(i)
        width = w
    if batch:
        batches.append(batch)
    return batches


def pad_batch(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ``(ids, attention_mask)``, both (B, longest) int64 on CPU."""
    width = max(len(x) for x in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    att = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, x in enumerate(seqs):
        ids[i, : len(x)] = torch.tensor(x)
        att[i, : len(x)] = 1
    return ids, att


def token_nll(logits: torch.Tensor, targets: torch.Tensor, rows: int | None = None
              ) -> torch.Tensor:
    """Negative log-likelihood (nats) of each target token: ``logsumexp(l) - l[target]``.

    Args:
        logits: (N, V) scores, any float dtype, any device.
        targets: (N,) int64 token ids.
        rows: rows per chunk (default 32 on CPU, where a chunk stays in cache — ~3x faster than
            one pass over all rows — and 1024 on GPU). Extra memory: ``rows * V * 4`` bytes.

    Returns:
        (N,) float32 on the device of ``logits``.
    """
    n, _ = logits.shape
    rows = rows or (1024 if logits.is_cuda else 32)
    out = torch.empty(n, dtype=torch.float32, device=logits.device)
    for a in range(0, n, rows):
        chunk = logits[a:a + rows].float()
        out[a:a + rows] = (torch.logsumexp(chunk, -1)
                           - chunk.gather(-1, targets[a:a + rows, None])[:, 0])
    return out


@torch.inference_mode()
def _nll_batch(lm: LoadedLM, seqs: list[list[int]]) -> list[np.ndarray]:
    ids, att = pad_batch(seqs, lm.tokenizer.pad_token_id)
    ids, att = ids.to(lm.device), att.to(lm.device)
    logits = lm.model(input_ids=ids, attention_mask=att).logits  # (B, W, V)
    # Per sequence, only its real positions: the NLL of token t+1 given tokens <= t.
    return [token_nll(logits[i, : len(x) - 1], ids[i, 1: len(x)]).cpu().numpy()
            for i, x in enumerate(seqs)]


def score_samples(samples: list[Sample], lm: LoadedLM, cfg: PplConfig) -> pl.DataFrame:
    """Perplexity table for ``samples``.

    Samples are encoded in batches (:func:`~mm_assets.core.quality.ppl_encode.encode_samples`,
    on ``cfg.encode_workers`` processes), sorted by length and scored in batches of at most
    ``cfg.batch_tokens`` padded tokens (:func:`length_batches`).

    Returns:
        DataFrame ``key, n_tokens, n_assistant_tokens, nll, ppl, text_nll, text_ppl,
        truncated, reason, source``; ``nll``/``ppl`` null with a ``reason`` when nothing is
        scorable.
    """
    workers = auto_workers(lm.device) if cfg.encode_workers < 0 else cfg.encode_workers
    enc = encode_samples(samples, lm.tokenizer, cfg.max_length, workers)
    nlls: dict[int, np.ndarray] = {}
    progress = Progress("perplexity", len(enc), "samples")
    for batch in length_batches([len(e[0]) for e in enc], cfg.batch_tokens):
        for j, v in zip(batch, _nll_batch(lm, [enc[j][0] for j in batch]), strict=True):
            nlls[j] = v
        progress.add(len(batch))
    rows = []
    for i, s in enumerate(samples):
        ids, mask, trunc = enc[i]
        per_tok = nlls.get(i, np.zeros(0))
        amask = np.asarray(mask[1:], dtype=bool)
        has_asst = any(t["from"] == ASSISTANT and t["value"].strip() for t in s.conversations)
        row = {"key": s.key, "n_tokens": len(ids), "n_assistant_tokens": int(amask.sum()),
               "nll": None, "ppl": None, "text_nll": None, "text_ppl": None,
               "truncated": trunc, "reason": None, "source": s.source}
        if per_tok.size:
            row["text_nll"] = float(per_tok.mean())
            row["text_ppl"] = math.exp(row["text_nll"])
        if has_asst and amask.any():
            row["nll"] = float(per_tok[amask].mean())
            row["ppl"] = math.exp(row["nll"])
        else:
            row["reason"] = "no_assistant_text"
        rows.append(row)
    return pl.DataFrame(rows, schema=PPL_SCHEMA)


@dataclass(slots=True)
class PplScorer:
    """A perplexity backend ready to score shards.

    Attributes:
        name: model name (``kenlm:PATH`` for KenLM).
        device: where it runs.
        long_text_rule: what happens to text longer than the model context (for metadata).
        score: samples -> table with :data:`PPL_SCHEMA` columns.
    """

    name: str
    device: str
    long_text_rule: str
    score: Callable[[list[Sample]], pl.DataFrame]


def build_scorer(model: str, device: str, dtype: str, cfg: PplConfig) -> PplScorer:
    """Scorer for ``model``: ``kenlm:/path/model.arpa`` (or a KenLM binary) runs the n-gram
    model on CPU (:mod:`.kenlm_ppl`); anything else is a causal LM for :func:`load_lm`.

    Raises:
        FileNotFoundError, ValueError: the model file is missing or unreadable (names the path).
    """
    if model.startswith("kenlm:"):
        from mm_assets.core.quality.kenlm_ppl import load_kenlm, score_samples_kenlm

        klm = load_kenlm(model[len("kenlm:"):])
        return PplScorer(model, "cpu", "no limit (n-gram model, nothing truncated)",
                         lambda samples: score_samples_kenlm(samples, klm))
    lm = load_lm(model, device, dtype)
    return PplScorer(lm.name, lm.device, f"right-truncated at {cfg.max_length} tokens",
                     lambda samples: score_samples(samples, lm, cfg))


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


def grouped_deciles(values: np.ndarray, groups: np.ndarray
                    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Deciles computed within each group (e.g. per source: CCNet's lesson that perplexity
    distributions differ by source).

    Args:
        values: (N,) float perplexities; NaN = unscored.
        groups: (N,) group labels (strings).

    Returns:
        ``(deciles, edges)``: (N,) int16 decile 0..9 of each value among its group's values
        (-1 for NaN), and the 9 edges per group (NaN edges for a group without scores).
    """
    (n,) = values.shape
    if groups.shape != (n,):
        raise ValueError(f"values {values.shape} and groups {groups.shape} differ in shape")
    out = np.full(n, -1, dtype=np.int16)
    edges: dict[str, np.ndarray] = {}
    for g in sorted(set(groups.tolist())):
        idx = np.flatnonzero(groups == g)
        edges[g] = decile_edges(values[idx])
        out[idx] = assign_deciles(values[idx], edges[g])
    return out, edges



def decile_table(scores: pl.DataFrame, per_source: bool = False) -> tuple[pl.DataFrame, dict]:
    """Each sample's perplexity decile, over the corpus or within its source.

    Args:
        scores: a :data:`PPL_SCHEMA` table (``source`` may be missing: one unnamed source).
        per_source: ``decile`` within the sample's source instead of over the corpus.

    Returns:
        ``(table, edges)``: columns ``key, ppl, source, decile, global_decile`` (-1 when
        unscored), and ``{"edges": [9 corpus edges], "per_source": {source: [9 edges]}}``
        (``per_source`` empty unless asked).
    """
    ppl = scores["ppl"].fill_null(float("nan")).to_numpy()
    src = scores["source"] if "source" in scores.columns else pl.Series([None] * scores.height)
    groups = src.cast(pl.Utf8).fill_null("").to_numpy().astype(str)
    edges = decile_edges(ppl)
    deciles = global_dec = assign_deciles(ppl, edges)
    by_source: dict[str, np.ndarray] = {}
    if per_source:
        deciles, by_source = grouped_deciles(ppl, groups)
    table = scores.select("key", "ppl").with_columns(
        pl.Series("source", groups, dtype=pl.Utf8), pl.Series("decile", deciles),
        pl.Series("global_decile", global_dec))
    return table, {"edges": edges.tolist(),
                   "per_source": {k: v.tolist() for k, v in by_source.items()}}
