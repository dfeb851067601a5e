"""Streaming reads of decision tables and a bounded per-section bottom-k.

Every table is read in Parquet record batches (pyarrow over the store's fsspec filesystem), so
memory is one batch plus what the caller keeps, whatever the table's size.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator

import polars as pl
import pyarrow.parquet as pq

from mm_assets.browse import _layout as layout
from mm_assets.core.storage import Store

BATCH_ROWS = 65_536


def iter_frames(store: Store, tables: Iterable[tuple[str | None, str]],
                columns: list[str] | None = None, batch_rows: int = BATCH_ROWS
                ) -> Iterator[pl.DataFrame]:
    """Record batches of Parquet tables as polars frames.

    Args:
        store: storage root.
        tables: ``(shard, rel)`` pairs; a non-null shard is added as a ``shard`` column.
        columns: columns to read (those a table lacks are skipped); None reads all.
        batch_rows: rows per batch (memory: one batch at a time).

    Yields:
        Frames of at most ``batch_rows`` rows. Missing files are skipped.
    """
    for shard, rel in tables:
        if not store.exists(rel):
            continue
        with store.open_read(rel) as f:
            pf = pq.ParquetFile(f)
            names = pf.schema_arrow.names
            cols = [c for c in columns if c in names] if columns else None
            for batch in pf.iter_batches(batch_size=batch_rows, columns=cols):
                df = pl.from_arrow(batch)
                yield df if shard is None else df.with_columns(pl.lit(shard).alias("shard"))


def one_table(rel: str) -> list[tuple[None, str]]:
    return [(None, rel)]


def key_tables(store: Store, shards: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """Per raw shard, the first existing table that lists every key of the shard
    (image_hashes, else curated decisions, else ppl_scores); shards with none are left out
    (see :func:`mm_assets.browse.fetch.tar_keys`)."""
    out = []
    for shard in shards if shards is not None else layout.raw_shard_ids(store):
        for rel in (layout.image_hashes(shard), layout.curated_decisions(shard),
                    layout.ppl_scores(shard)):
            if store.exists(rel):
                out.append((shard, rel))
                break
    return out


def rows_for_keys(store: Store, tables: Iterable[tuple[str | None, str]], keys: pl.Series,
                  columns: list[str], on: str = "key") -> pl.DataFrame:
    """Rows of ``tables`` whose ``on`` column is in ``keys`` (memory: matches + one batch)."""
    parts = [df.filter(pl.col(on).is_in(keys)) for df in iter_frames(store, tables, columns)]
    parts = [p for p in parts if p.height]
    return pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()


class SectionTopK:
    """Per section, the ``n`` rows with the smallest ``_order`` (ties broken by key), kept
    while frames stream past; also counts every candidate per section.

    Memory: ``n × sections`` rows plus the frame being added.
    """

    def __init__(self, n: int, distinct: bool = False):
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n, self.kept, self.counts = n, None, Counter()
        self.distinct, self._last = distinct, None

    def add(self, df: pl.DataFrame) -> None:
        """Offer a frame with columns ``section, section_rank, _order, key`` (+ any others);
        with ``distinct``, a key counts once (repeats must be contiguous across frames)."""
        if df.height == 0:
            return
        if self.distinct:  # rows of one key are contiguous (tables sorted by group)
            df = df.unique("key", maintain_order=True)
            repeat = df["key"][0] == self._last
            self._last = df["key"][-1]
            df_counted = df.slice(1) if repeat else df
        else:
            df_counted = df
        for section, count in df_counted.group_by("section").len().iter_rows():
            self.counts[section] += count
        merged = df if self.kept is None else pl.concat([self.kept, df], how="diagonal_relaxed")
        if self.distinct:
            merged = merged.unique(["section", "key"], keep="first", maintain_order=True)
        self.kept = (merged.sort("section", "_order", "key")
                     .group_by("section", maintain_order=True).head(self.n))

    def result(self) -> pl.DataFrame:
        """Kept rows sorted by section rank, section, then order (empty frame when none)."""
        if self.kept is None:
            return pl.DataFrame(schema={"key": pl.Utf8, "section": pl.Utf8,
                                        "section_rank": pl.Float64, "_order": pl.Float64})
        return self.kept.sort("section_rank", "section", "_order", "key")
