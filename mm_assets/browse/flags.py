"""Text-quality flags in the browser: which samples carry a flag, each shown sample's flags with
their spans, and flag rates per source — all read from the per-shard ``text_quality`` tables
(one row per flag: key, source, flag, turn, score, start, end; ``start:end`` is a character
(code point) span of ``conversations[turn]["value"]``, 0:0 when the flag has none, turn -1 for
the whole sample; see :mod:`mm_assets.core.quality.text_flags`).

Memory: one table batch plus the counts (sources × flags) or the rows of the shown keys.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

import polars as pl

from mm_assets.browse import _layout as layout
from mm_assets.browse.tables import iter_frames, key_tables, rows_for_keys
from mm_assets.core.quality.text_flags import FLAGS
from mm_assets.core.storage import Store

FLAG_RANK = {f: float(i) for i, f in enumerate(FLAGS)}
SPAN_FIELDS = {"flag": pl.Utf8, "turn": pl.Int32, "score": pl.Float64, "start": pl.Int32,
               "end": pl.Int32}


def flag_tables(store: Store, shards: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """``(shard, path)`` of the text_quality tables (of ``shards`` only, when given)."""
    tables = layout.text_quality_files(store)
    if shards is not None:
        wanted = set(shards)
        tables = [t for t in tables if t[0] in wanted]
    return tables


def flagged_frames(store: Store, shards: Iterable[str] | None = None
                   ) -> Iterator[pl.DataFrame]:
    """Frames of ``key, source, flag, shard``: one row per (sample, flag), however many turns
    carry it. A sample's rows are contiguous in its shard's table (written sample by sample),
    so only the last key of the previous batch can repeat."""
    prev_key, prev_flags = None, set()
    for df in iter_frames(store, flag_tables(store, shards), ["key", "source", "flag"]):
        df = df.unique(["key", "flag"], keep="first", maintain_order=True)
        if prev_key is not None and prev_flags:
            df = df.filter((pl.col("key") != prev_key) | ~pl.col("flag").is_in(list(prev_flags)))
        if df.height == 0:
            continue
        last = df["key"][-1]
        flags = set(df.filter(pl.col("key") == last)["flag"].to_list())
        prev_flags = flags | (prev_flags if last == prev_key else set())
        prev_key = last
        yield df


def flag_rates(store: Store, shards: Iterable[str] | None = None) -> pl.DataFrame:
    """Per (source, flag): samples flagged, samples of the source, rate (null when the key
    tables give no source). One row per source with flag null when nothing is flagged there."""
    flagged: Counter = Counter()
    for df in flagged_frames(store, shards):
        flagged.update(df.select("source", "flag").iter_rows())
    samples: Counter = Counter()
    for df in iter_frames(store, key_tables(store, shards), ["key", "source"]):
        if "source" in df.columns:
            samples.update(dict(df.group_by("source").len().iter_rows()))
    rows = [{"source": s, "flag": f, "flagged": c} for (s, f), c in flagged.items()]
    rows += [{"source": s, "flag": None, "flagged": 0} for s in samples
             if not any(r["source"] == s for r in rows)]
    df = pl.DataFrame(rows, schema={"source": pl.Utf8, "flag": pl.Utf8, "flagged": pl.Int64})
    return (df.with_columns(pl.col("source").replace_strict(
        dict(samples), default=None, return_dtype=pl.Int64).alias("samples"))
        .with_columns((pl.col("flagged") / pl.col("samples")).alias("rate"))
        .sort("source", pl.col("flag").replace_strict(FLAG_RANK, default=99.0,
                                                      return_dtype=pl.Float64)))


def card_flags(store: Store, located: pl.DataFrame) -> dict[str, list[dict]]:
    """key -> its flags (``flag, turn, score, start, end``; by turn, then start), read from
    the text_quality tables of the shards holding ``located``'s keys only."""
    by_shard = located.select("key", "shard").drop_nulls()
    if by_shard.height == 0:
        return {}
    tables = flag_tables(store, sorted(set(by_shard["shard"])))
    rows = rows_for_keys(store, tables, by_shard["key"].unique(), ["key", *SPAN_FIELDS])
    if rows.height == 0:
        return {}
    out: dict[str, list[dict]] = {}
    for r in rows.sort("key", "turn", "start", "flag").iter_rows(named=True):
        out.setdefault(r["key"], []).append({k: r[k] for k in SPAN_FIELDS})
    return out
