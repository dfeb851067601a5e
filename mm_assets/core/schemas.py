"""The declared schema of every Parquet table handed from one stage to another.

One ``{column: polars dtype}`` dict per table (where each lives: :mod:`mm_assets.core.layout`).
:meth:`Store.write_table <mm_assets.core.storage.Store.write_table>` and
:meth:`Store.read_table <mm_assets.core.storage.Store.read_table>` check a table against its
schema and raise :class:`SchemaError` naming the file (its URL) and the column, expected vs
found:

- on write the table must be exactly the schema: same columns, same order, same dtypes (a
  writer declares every column it hands off; the bytes written are unchanged);
- on read every declared column must be there with its dtype; extra columns are allowed (a
  reader uses what it declares, so a newer writer may add columns without breaking it).
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

Schema = Mapping[str, pl.DataType]


class SchemaError(ValueError):
    """A table does not match its declared schema.

    Attributes:
        where: the file (store URL). column: the offending column.
        expected / found: declared and actual dtype (``None``: column absent / undeclared).
    """

    def __init__(self, where: str, column: str, expected, found, detail: str):
        self.where, self.column, self.expected, self.found = where, column, expected, found
        super().__init__(f"{where}: column {column!r} {detail}")


def check_schema(schema: Schema, found: Mapping[str, pl.DataType], where: str,
                 exact: bool = False) -> None:
    """Check the columns ``found`` (name -> dtype) of the table at ``where`` against ``schema``.

    Args:
        exact: also refuse columns the schema does not declare, and another column order
            (what a writer must meet); otherwise extra columns are allowed (a reader).

    Raises:
        SchemaError: the first missing column, wrong dtype, undeclared column or out-of-order
            column, with the file and the column named.
    """
    for col, dtype in schema.items():
        if col not in found:
            raise SchemaError(where, col, dtype, None,
                              f"missing: expected {dtype}, found columns {list(found)}")
        if found[col] != dtype:
            raise SchemaError(where, col, dtype, found[col],
                              f"has the wrong dtype: expected {dtype}, found {found[col]}")
    if not exact:
        return
    for col, dtype in found.items():
        if col not in schema:
            raise SchemaError(where, col, None, dtype,
                              f"({dtype}) is not declared: expected only {list(schema)}")
    for want, col in zip(schema, found, strict=True):
        if want != col:
            raise SchemaError(where, col, want, col, f"is out of order: expected the columns "
                              f"{list(schema)}, found {list(found)}")


def subset(schema: Schema, *columns: str) -> dict[str, pl.DataType]:
    """The declared ``columns`` of ``schema``: what a reader that uses only those checks.

    Raises:
        KeyError: a column the schema does not declare.
    """
    return {c: schema[c] for c in columns}


QUARANTINE = {"key": pl.Utf8, "stage": pl.Utf8, "reason": pl.Utf8, "error": pl.Utf8,
              "location": pl.Utf8}
"""``quarantine/{stage}/{part}.parquet``: unusable records (see ``records.Quarantined``)."""

IMAGE_HASHES = {
    "key": pl.Utf8, "source": pl.Utf8, "n_images": pl.Int32,
    "bytes_hashes": pl.List(pl.Utf8), "pixel_hashes": pl.List(pl.Utf8),
    "phashes": pl.List(pl.Int64), "phashes_flip": pl.List(pl.Int64), "list_hash": pl.Utf8,
    "pixel_list_hash": pl.Utf8, "text_hash": pl.Utf8, "widths": pl.List(pl.Int32),
    "heights": pl.List(pl.Int32),
}
"""``image_hashes/{shard}.parquet`` and ``raw_shards/{shard}.hashes.parquet``: per sample the
hashes of its images (in order), of the image list (null: text-only) and of its text."""

EXACT_GROUPS = {"key": pl.Utf8, "kind": pl.Utf8, "group_id": pl.Utf8, "group_size": pl.UInt32,
                "representative": pl.Utf8, "is_representative": pl.Boolean, "action": pl.Utf8}
"""``exact_duplicates/groups.parquet``: members of groups of size >= 2, ``action`` keep /
merge / remove."""

EXACT_GROUP_SIZES = {"kind": pl.Utf8, "group_size": pl.UInt32, "n_groups": pl.UInt32}
"""``exact_duplicates/group_sizes.parquet``: groups per (kind, size)."""

NEAR_GROUPS = {"key": pl.Utf8, "near_group": pl.Utf8, "near_group_size": pl.UInt32}
"""``exact_duplicates/near_groups.parquet``: pHash near-duplicate groups."""

EMBEDDING_KEYS = {"key": pl.Utf8}
"""``embeddings/{shard}/{space}_keys.parquet``: the key of each vector row."""

IMAGE_EMBEDDING_SEGMENT = {"hash": pl.Utf8, "row": pl.Int32, "reason": pl.Utf8}
"""``image_embeddings/{fp}/{segment}.parquet``: image bytes hash -> row of the segment's
vectors (-1 and a reason when the image failed to decode)."""

CLUSTER_ASSIGNMENTS = {"key": pl.Utf8, "space": pl.Utf8, "cluster": pl.Int32,
                       "distance": pl.Float32}
"""``clusters/assignments.parquet``: cluster and cosine distance to its centroid."""

SEMDEDUP_SCORES = {"key": pl.Utf8, "space": pl.Utf8, "cluster": pl.Int32, "unique": pl.Boolean,
                   "score": pl.Float32, "duplicate": pl.Boolean, "partner": pl.Utf8,
                   "unconfirmed": pl.Boolean}
"""``semdedup/scores.parquet``: SemDeDup score, decision and kept partner per sample."""

TEXT_QUALITY = {"key": pl.Utf8, "source": pl.Utf8, "flag": pl.Utf8, "turn": pl.Int32,
                "score": pl.Float64, "start": pl.Int32, "end": pl.Int32}
"""``text_quality/{shard}.parquet``: one row per formatting flag."""

PPL_SCORES = {
    "key": pl.Utf8, "n_tokens": pl.Int32, "n_assistant_tokens": pl.Int32, "nll": pl.Float64,
    "ppl": pl.Float64, "text_nll": pl.Float64, "text_ppl": pl.Float64,
    "truncated": pl.Boolean, "reason": pl.Utf8, "source": pl.Utf8}
"""``ppl_scores/{shard}.parquet``: perplexity per sample (null with a reason: unscored)."""

PPL_DECILES = {"key": pl.Utf8, "ppl": pl.Float64, "source": pl.Utf8, "decile": pl.Int16,
               "global_decile": pl.Int16}
"""``ppl_deciles/deciles.parquet``: decile 0-9 per sample (-1: unscored)."""

CURATED_DECISIONS = {"key": pl.Utf8, "status": pl.Utf8, "reason": pl.Utf8}
"""``curated/{shard}.decisions.parquet``: every key kept / removed, with the reason."""

CURATED_INDEX = {"key": pl.Utf8, "action": pl.Utf8, "semdup": pl.Boolean, "decile": pl.Int32}
"""``curated/_index/{fp}/{shard}.parquet``: one shard's rows of the global decision tables."""

EVAL_RESULTS = {"mixture": pl.Utf8, "mixture_digest": pl.Utf8, "benchmark": pl.Utf8,
                "metric": pl.Utf8, "value": pl.Float64, "stderr": pl.Float64,
                "primary": pl.Boolean, "format": pl.Utf8, "model": pl.Utf8,
                "model_run": pl.Utf8, "notes": pl.Utf8, "source_file": pl.Utf8,
                "file_id": pl.Utf8, "recorded_at": pl.Utf8, "row": pl.Int32}
"""``evals/{mixture}/{digest}/{file_id}.parquet``: one results file's metrics, one row per
(benchmark, metric), in file order (``row``); ``primary`` marks each benchmark's headline
metric (see ``mm_assets.core.evals.formats``); ``recorded_at`` is UTC ISO-8601."""
