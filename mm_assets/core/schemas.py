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

SEMDEDUP_RANGE_JOB = {"position": pl.Int64, "cluster": pl.Int32, "distance": pl.Float32}
"""``semdedup_ranges/jobs/{key}.parquet``: a range's unique points (space position, ascending)."""
SEMDEDUP_RANGE_SCORES = {"position": pl.Int64, "score": pl.Float32, "partner": pl.Int64}
"""``semdedup_ranges/scores/{key}.parquet``: SemDeDup score and partner position (-1: none)."""

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

SYNTHETIC_DECISIONS = {"key": pl.Utf8, "status": pl.Utf8, "reason": pl.Utf8,
                       "duplicate_of": pl.Utf8, "near_group": pl.Utf8, "ppl": pl.Float64,
                       "flags": pl.List(pl.Utf8)}
"""``synthetic/{spec}/checked/decisions.parquet``: every rendered key kept / removed with the
reason, the key it duplicates (exact or corpus), its pHash near-duplicate group (leader key),
assistant perplexity and text-quality flags."""

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

POOL_ASSIGN = {"key": pl.Utf8, "pool": pl.Utf8, "shard": pl.Utf8, "wds_key": pl.Utf8,
               "caption": pl.Utf8, "bytes_hash": pl.Utf8, "pixel_hash": pl.Utf8,
               "phash": pl.Int64, "phash_flip": pl.Int64, "width": pl.Int32, "height": pl.Int32,
               "row": pl.Int32, "cluster": pl.Int32, "sim": pl.Float32, "cluster2": pl.Int32,
               "sim2": pl.Float32, "span_start": pl.Int64, "span_end": pl.Int64}
"""``pools/{pool}/{stem}.parquet``: one row per usable pool sample (key
``{pool}/{stem}/{wds_key}``), its hashes (same functions as ``image_hashes``; phash and
phash_flip null for images too small or flat for a pHash), image size in
pixels, ``row`` in ``{stem}.npy``, and the nearest / second-nearest corpus image centroid with
cosine similarity of the stored float16 vector (may exceed 1 by ≤ 1e-4 from rounding; margin =
sim - sim2; cluster2 = -1 and sim2 = NaN with a single centroid); ``span_start`` /
``span_end``: the sample's byte span in the pool tar (bytes; first member header to the end of
its last member's padded data), so ``mined`` reads only selected samples (null for a compressed
shard; tables written before spans were recorded lack the two columns)."""


# ------------------------------------------------------------------ interleaved documents
DOC_IMAGES = {"key": pl.Utf8, "pos": pl.Int32, "url": pl.Utf8, "has_bytes": pl.Boolean,
              "bytes_hash": pl.Utf8, "pixel_hash": pl.Utf8, "phash": pl.Int64,
              "width": pl.Int32, "height": pl.Int32, "reason": pl.Utf8}
"""``doc_hashes/{shard}.parquet``: one row per image segment (``pos``: segment position);
hashes null for URL-only images (``has_bytes`` false) and undecodable ones (``reason``)."""

DOC_TABLE = {"key": pl.Utf8, "source": pl.Utf8, "n_segments": pl.Int32, "n_texts": pl.Int32,
             "n_images": pl.Int32, "n_url_only": pl.Int32, "doc_hash": pl.Utf8}
"""``doc_hashes/{shard}.docs.parquet``: per document, the hash of its ordered segments."""

DOC_REPEAT_IMAGES = {"key": pl.Utf8, "pos": pl.Int32, "group_id": pl.Utf8, "kind": pl.Utf8,
                     "n_docs": pl.Int32, "action": pl.Utf8}
"""``doc_repeats/images.parquet``: image positions in a repeated group, action drop / keep."""

DOC_REPEAT_GROUPS = {"group_id": pl.Utf8, "kind": pl.Utf8, "n_docs": pl.Int32,
                     "n_images": pl.Int32, "action": pl.Utf8, "example_key": pl.Utf8}
"""``doc_repeats/groups.parquet``: one row per image seen in >= 2 documents."""

DOC_DUPLICATES = {"key": pl.Utf8, "group_id": pl.Utf8, "group_size": pl.Int32,
                  "representative": pl.Utf8, "action": pl.Utf8}
"""``doc_repeats/documents.parquet``: exact-duplicate documents, action keep / remove."""

DOC_DECISIONS = {"key": pl.Utf8, "pos": pl.Int32, "status": pl.Utf8, "reason": pl.Utf8}
"""``docs_curated/{shard}.decisions.parquet``: per document (``pos`` -1) and per removed image
segment (its original position): kept / removed with the reason."""

DOC_PPL = {"key": pl.Utf8, "pos": pl.Int32, "n_tokens": pl.Int32, "nll": pl.Float64,
           "ppl": pl.Float64, "reason": pl.Utf8}
"""``doc_quality/{shard}.ppl.parquet``: perplexity per text segment (null with a reason)."""

MINED_SELECTION = {"key": pl.Utf8, "out_key": pl.Utf8, "pool": pl.Utf8, "shard": pl.Utf8,
                   "wds_key": pl.Utf8, "cluster": pl.Int32, "sim": pl.Float32,
                   "caption": pl.Utf8, "bytes_hash": pl.Utf8, "phash": pl.Int64}
"""``mined/{recipe}/selection.parquet``: the pool samples a mining recipe took, in output order
(``key`` as in :data:`POOL_ASSIGN`; ``out_key`` the sample key in the mined shards)."""

DOC_EMBEDDING_KEYS = {"key": pl.Utf8, "pos": pl.Int32}
"""``doc_embeddings/{shard}.parquet``: document key and image position of each vector row."""

DOC_CLUSTERS = {"key": pl.Utf8, "pos": pl.Int32, "cluster": pl.Int32, "distance": pl.Float32}
"""``doc_embeddings/clusters/assignments.parquet``: cluster and 1 - cos to its centroid."""
