"""Per-row filters of mining candidates: similarity to the assigned centroid, margin to the
second-nearest, caption length in characters and caption language (CLD2, Chromium's Compact
Language Detector 2 through pycld2; a caption it cannot identify reliably passes)."""

from __future__ import annotations

import numpy as np
import polars as pl

from mm_assets.core.mine.recipe import MiningRecipe


def _language_ok(caption: str, languages: tuple[str, ...]) -> bool:
    import pycld2

    try:
        reliable, _, ((_, lang, _, _), *_) = pycld2.detect(caption)
    except pycld2.error:
        return True
    return not reliable or lang in languages


def apply_filters(df: pl.DataFrame, r: MiningRecipe, tallies: dict, count: bool,
                  language: bool = True) -> pl.DataFrame:
    """The rows of a pool table (POOL_ASSIGN columns) that pass ``r``'s filters.

    Args:
        tallies: ``{cluster: ClusterTally}``; with ``count`` each rejected row is counted
            in its cluster's ``rejected[reason]`` (first failing filter, in the order
            low_sim, low_margin, caption_length, caption_language).
        language: also the language filter (the selection runs it later, on the rows it
            keeps only: :func:`language_filter`).

    Margin is ``sim - sim2``; a row without a second centroid (sim2 null/NaN) has an infinite
    margin. Language: CLD2 (pycld2) on rows that passed the other filters only."""
    cap = r.caption
    n_chars = df["caption"].str.len_chars()
    margin = (df["sim"] - df["sim2"]).fill_nan(float("inf")).fill_null(float("inf"))
    reason = np.full(df.height, "", object)
    checks = [("low_sim", (df["sim"] < r.min_sim).to_numpy()),
              ("low_margin", (margin < r.min_margin).to_numpy()),
              ("caption_length", ((n_chars < cap.min_chars) | (
                  n_chars > cap.max_chars if cap.max_chars is not None else False)).to_numpy())]
    for name, bad in checks:
        reason[(reason == "") & bad] = name
    if cap.languages and language:
        texts = df["caption"].to_list()
        for i in np.flatnonzero(reason == ""):
            if not _language_ok(texts[i], cap.languages):
                reason[i] = "caption_language"
    if count:
        for c, why in zip(df["cluster"].to_list(), reason.tolist(), strict=True):
            if why:
                tallies[c].rejected[why] += 1
    return df.filter(pl.Series(reason == ""))


def language_filter(df: pl.DataFrame, r: MiningRecipe, tallies: dict) -> pl.DataFrame:
    """The rows whose caption is in one of ``r.caption.languages`` (CLD2; unsure passes);
    each other row counted ``caption_language`` in its cluster's tally. Run on the rows the
    selection keeps (a few per wanted image), not on every pool row: CLD2 is the costliest
    filter (≈ 5 µs a caption)."""
    if not r.caption.languages or df.height == 0:
        return df
    ok = np.array([_language_ok(t, r.caption.languages) for t in df["caption"].to_list()])
    for c in df["cluster"].filter(pl.Series(~ok)).to_list():
        tallies[c].rejected["caption_language"] += 1
    return df.filter(pl.Series(ok))
