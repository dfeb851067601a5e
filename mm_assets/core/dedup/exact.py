"""Hash tables per shard and exact-duplicate groups across shards.

Grouping uses polars (sort/group-by on hash columns), so memory is a few columns of the hash
table, not Python objects per sample. Image samples group by the hash of their ordered list of
pixel hashes (so byte-identical files and the same picture re-encoded losslessly group
together; undecodable images fall back to their byte hash); text-only samples group only with
text-only samples of identical normalised text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import polars as pl

from mm_assets.core import schemas
from mm_assets.core.dedup.hashing import (
    ImageHashes,
    bytes_hash,
    hash_image,
    list_hash,
    text_hash,
)
from mm_assets.core.ingest.images import DEFAULT_MAX_PIXELS
from mm_assets.core.records import Sample

Policy = Literal["merge", "keep_one", "keep_all"]

HASH_SCHEMA = schemas.IMAGE_HASHES


@dataclass(frozen=True, slots=True)
class DedupConfig:
    """Exact-dedup settings.

    Attributes:
        policy: ``merge`` (duplicates kept for the ``merged`` asset; identical text-only samples
            keep one), ``keep_one`` (all but the representative removed), ``keep_all``.
        max_pixels: pixel cap when decoding for pixel and perceptual hashes.
        phash_threshold: near-duplicate when pHash Hamming distance <= this (bits of 64).
        flip_invariant: near-duplicates also match horizontally mirrored images.
        workers: processes hashing the shards of one run (0 = one per core).
    """

    policy: Policy = "merge"
    max_pixels: int = DEFAULT_MAX_PIXELS
    phash_threshold: int = 6
    flip_invariant: bool = False
    workers: int = 0

    def __post_init__(self) -> None:
        if self.policy not in ("merge", "keep_one", "keep_all"):
            raise ValueError(f"policy must be merge, keep_one or keep_all, got {self.policy!r}")
        if not 0 <= self.phash_threshold < 64:
            raise ValueError(f"phash_threshold must be in [0, 64), got {self.phash_threshold}")
        if self.workers < 0:
            raise ValueError(f"workers must be >= 0 (0 = one per core), got {self.workers}")


def hash_row(s: Sample, hs: list[ImageHashes]) -> dict:
    """The :data:`HASH_SCHEMA` row of sample ``s`` from its images' hashes ``hs`` (in order)."""
    return {
        "key": s.key, "source": s.source, "n_images": len(hs),
        "bytes_hashes": [h.bytes_hash for h in hs],
        "pixel_hashes": [h.pixel_hash or h.bytes_hash for h in hs],
        "phashes": [h.phash for h in hs if h.phash is not None],
        "phashes_flip": [h.phash_flip for h in hs if h.phash is not None],
        "list_hash": list_hash([h.bytes_hash for h in hs]),
        "pixel_list_hash": list_hash([h.pixel_hash or h.bytes_hash for h in hs]),
        "text_hash": text_hash(s.text()),
        "widths": [h.width for h in hs], "heights": [h.height for h in hs],
    }


def hash_table(rows: list[dict]) -> pl.DataFrame:
    """Rows of :func:`hash_row` as a DataFrame with :data:`HASH_SCHEMA`."""
    return pl.DataFrame(rows, schema=HASH_SCHEMA)


def hash_samples(samples: Iterable[Sample], max_pixels: int) -> pl.DataFrame:
    """One row per sample: byte, pixel and perceptual hashes of each image, list and text hashes.

    Returns:
        DataFrame with :data:`HASH_SCHEMA`; ``list_hash`` is null for text-only samples.
    """
    return hash_table([hash_row(s, [hash_image(b, max_pixels) for b in s.images])
                       for s in samples])


def reuse_recorded(recorded: pl.DataFrame, samples: list[Sample], max_pixels: int
                   ) -> pl.DataFrame | None:
    """``recorded`` (hashes raw_shards computed while validating) if it is exactly what
    :func:`hash_samples` would give for ``samples`` at ``max_pixels``, else ``None``.

    Checked without decoding: same keys in order, same xxh3-128 of every image's bytes and
    of the text, and every image within ``max_pixels`` (raw_shards decoded each image under
    its own cap; a smaller cap here would turn some into decode errors).
    """
    if recorded.columns != list(HASH_SCHEMA) or recorded.height != len(samples):
        return None
    for s, row in zip(samples, recorded.iter_rows(named=True), strict=True):
        if (row["key"] != s.key or row["source"] != s.source
                or row["text_hash"] != text_hash(s.text())
                or row["bytes_hashes"] != [bytes_hash(b) for b in s.images]
                or any(w * h > max_pixels for w, h in zip(row["widths"], row["heights"],
                                                          strict=True))):
            return None
    return recorded


def exact_groups(hashes: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """Duplicate groups over all shards and the policy's decision per member.

    Representative of a group: the smallest key (a documented, deterministic rule).

    Args:
        hashes: concatenated per-shard hash tables (:data:`HASH_SCHEMA`).
        policy: see :class:`DedupConfig`.

    Returns:
        One row per sample in a group of size ≥ 2: ``key, kind ("image"|"text"), group_id,
        group_size, representative, is_representative, action ("keep"|"merge"|"remove")``.
    """
    img = hashes.filter(pl.col("list_hash").is_not_null()).select(
        "key", pl.lit("image").alias("kind"), pl.col("pixel_list_hash").alias("group_id"))
    txt = hashes.filter(pl.col("list_hash").is_null()).select(
        "key", pl.lit("text").alias("kind"), pl.col("text_hash").alias("group_id"))
    both = pl.concat([img, txt]).with_columns(
        pl.len().over("kind", "group_id").alias("group_size"),
        pl.col("key").min().over("kind", "group_id").alias("representative"),
    ).filter(pl.col("group_size") > 1)
    both = both.with_columns((pl.col("key") == pl.col("representative")).alias("is_representative"))
    removed = pl.lit("remove")
    if policy == "keep_all":
        action = pl.lit("keep")
    elif policy == "keep_one":
        action = pl.when(pl.col("is_representative")).then(pl.lit("keep")).otherwise(removed)
    else:
        action = (pl.when(pl.col("kind") == "image").then(pl.lit("merge"))
                  .when(pl.col("is_representative")).then(pl.lit("keep")).otherwise(removed))
    return both.with_columns(action.alias("action")).sort("kind", "group_id", "key")


def group_size_histogram(groups: pl.DataFrame) -> pl.DataFrame:
    """``group_size -> n_groups`` per kind (groups of one are not listed)."""
    per_group = groups.unique(["kind", "group_id"]).select("kind", "group_size")
    return per_group.group_by("kind", "group_size").agg(pl.len().alias("n_groups")).sort(
        "kind", "group_size")
