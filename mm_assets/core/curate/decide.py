"""Applying dedup and quality decisions to one shard.

A sample is removed with exactly one reason, checked in this order: ``exact_duplicate`` (by the
exact-dedup policy), ``semdedup``, ``text_<flag>`` (the first text-quality flag of the sample in
``text_filters`` order, see :mod:`mm_assets.core.quality.text_flags`), ``ppl_out_of_range``
(decile outside the configured range),
``no_ppl_score`` (when a decile range is set and the sample has no score). Everything else is
kept. The decision table keeps every key with its status and reason.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from mm_assets.core import schemas
from mm_assets.core.quality.text_flags import DEFAULT_FILTERS, FLAGS
from mm_assets.core.records import Sample, StageCounts


@dataclass(frozen=True, slots=True)
class CurateConfig:
    """Attributes:
    min_decile: lowest perplexity decile kept (0-9).
    max_decile: highest perplexity decile kept (0-9).
    text_filters: text-quality flags that remove a sample (names from ``FLAGS``); the
        default set is the flags measured at precision 1.0 with no hit on the shared real
        instruction data (tests/core/quality/test_text_flags.py).
    workers: processes curating the shards of one (batched) run, 0 = one per core; no
        effect on decisions.
    """

    min_decile: int = 0
    max_decile: int = 9
    text_filters: tuple[str, ...] = DEFAULT_FILTERS
    workers: int = 0

    def __post_init__(self) -> None:
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0 = one per core), got {self.workers}")
        if not 0 <= self.min_decile <= self.max_decile <= 9:
            raise ValueError(f"need 0 <= min_decile <= max_decile <= 9: {self}")
        unknown = sorted(set(self.text_filters) - set(FLAGS))
        if unknown:
            raise ValueError(f"unknown text filter(s) {unknown}; known: {list(FLAGS)}")

    @property
    def filters_ppl(self) -> bool:
        return (self.min_decile, self.max_decile) != (0, 9)


def decide(keys: list[str], exact: pl.DataFrame, semdup: set[str], deciles: dict[str, int],
           cfg: CurateConfig, text_flags: dict[str, set[str]] | None = None) -> pl.DataFrame:
    """Decision per key: ``key, status ("kept"|"removed"), reason`` (reason null when kept).

    Args:
        keys: keys of the shard, in shard order.
        exact: rows of the exact-duplicate table (``key, action``) for this shard.
        semdup: keys SemDeDup marks as duplicates.
        deciles: key -> perplexity decile (-1 when unscored).
        cfg: decile range and text filters.
        text_flags: key -> the text-quality flags of that sample (absent: none).
    """
    text_flags = text_flags or {}
    removed_exact = set(exact.filter(pl.col("action") == "remove")["key"].to_list())
    rows = []
    for k in keys:
        reason = None
        if k in removed_exact:
            reason = "exact_duplicate"
        elif k in semdup:
            reason = "semdedup"
        elif (hit := [f for f in cfg.text_filters if f in text_flags.get(k, ())]):
            reason = f"text_{hit[0]}"
        elif cfg.filters_ppl:
            d = deciles.get(k, -1)
            if d < 0:
                reason = "no_ppl_score"
            elif not cfg.min_decile <= d <= cfg.max_decile:
                reason = "ppl_out_of_range"
        rows.append({"key": k, "status": "removed" if reason else "kept", "reason": reason})
    return pl.DataFrame(rows, schema=schemas.CURATED_DECISIONS)


def apply(samples: list[Sample], decisions: pl.DataFrame) -> tuple[list[Sample], StageCounts]:
    """Kept samples (with their decile in metadata left to the caller) and the counts."""
    reason = dict(zip(decisions["key"].to_list(), decisions["reason"].to_list(), strict=True))
    counts = StageCounts(n_in=len(samples))
    kept = []
    for s in samples:
        r = reason.get(s.key)
        if r:
            counts.removed[r] += 1
        else:
            kept.append(s)
    counts.n_out = len(kept)
    return kept, counts
