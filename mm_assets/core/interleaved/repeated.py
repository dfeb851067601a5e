"""Images repeated across documents (logos, icons, banners), duplicate documents, and the
policies that remove them while keeping each document's order.

Repeated images: every image row of :data:`~mm_assets.core.schemas.DOC_IMAGES` gets an
identity per kind — ``bytes:{xxh3}`` (same file), ``phash:{int}`` (same 64-bit pHash: the same
picture re-encoded or resized) or, with ``phash_radius`` > 0, ``near:{leader}`` (a pHash star
group within that Hamming radius) and, for URL-only images, ``url:{url}``. ``n_docs`` of an identity is the number of distinct documents holding
it; each image takes the identity with the largest ``n_docs``. Policy: an image in more than
``max_docs_per_image`` documents is boilerplate (OBELICS drops images present in many
documents — Laurençon et al. 2023, "OBELICS", §3 "image deduplication", which removes images
appearing more than 10 times across the dataset) and, with ``drop_repeated``, is removed from
every document; the other segments keep their order.

Duplicate documents: same :func:`~.hashes.doc_hash`; the smallest key is kept.

Memory: :func:`repeated_images` and :func:`duplicate_documents` hold the image and document
tables of the whole corpus (~100 B per image row); :func:`removals_by_shard` splits their
removals per doc shard, so curating one shard (:func:`apply_policies`) needs only that shard's
documents and removal rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from mm_assets.core import schemas
from mm_assets.core.interleaved.doc import Document, ImageSeg

KEEP, DROP, REMOVE = "keep", "drop", "remove"


@dataclass(frozen=True)
class RepeatConfig:
    """Repeated-image and duplicate-document policy.

    Attributes:
        max_docs_per_image: an image found in more than this many distinct documents is
            repeated (>= 1).
        drop_repeated: remove repeated images from their documents (else only report them).
        use_phash: also group images by pHash (re-encoded / resized copies).
        phash_radius: pHash Hamming radius in bits (0 <= r < 64): 0 groups equal pHashes
            only; r > 0 groups near copies in star groups (leader = smallest image id,
            :func:`mm_assets.core.dedup.near.near_duplicate_groups`, as ``image_hashes``'s
            ``phash_threshold``, default 6 there).
        drop_duplicate_documents: remove all but the smallest key of each exact-duplicate
            document group.
    """

    max_docs_per_image: int = 10
    drop_repeated: bool = True
    use_phash: bool = True
    phash_radius: int = 0
    drop_duplicate_documents: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.phash_radius < 64:
            raise ValueError(f"phash_radius must be in [0, 64), got {self.phash_radius}")
        if self.max_docs_per_image < 1:
            raise ValueError(f"max_docs_per_image must be >= 1, got {self.max_docs_per_image}")


def _near(images: pl.DataFrame, radius: int) -> pl.DataFrame:
    """``(key, pos, kind, ident)`` of images in a pHash star group within ``radius`` bits."""
    from mm_assets.core.dedup.near import near_duplicate_groups

    ph = images.filter(pl.col("phash").is_not_null()).select(
        key=pl.col("key") + "#" + pl.col("pos").cast(pl.Utf8), phashes=pl.concat_list("phash"))
    groups = near_duplicate_groups(ph, radius)
    part = pl.col("key").str.split("#")
    return groups.select(key=part.list.first(), pos=part.list.last().cast(pl.Int32),
                         kind=pl.lit("near"), ident=pl.lit("near:") + pl.col("near_group"))


def _identities(images: pl.DataFrame, cfg: RepeatConfig) -> pl.DataFrame:
    """``(key, pos, kind, ident)`` rows: one per image and identity kind it has."""
    parts = [images.filter(pl.col("bytes_hash").is_not_null()).select(
        "key", "pos", kind=pl.lit("bytes"), ident=pl.lit("bytes:") + pl.col("bytes_hash"))]
    if cfg.use_phash and cfg.phash_radius > 0:
        parts.append(_near(images, cfg.phash_radius))
    elif cfg.use_phash:
        parts.append(images.filter(pl.col("phash").is_not_null()).select(
            "key", "pos", kind=pl.lit("phash"),
            ident=pl.lit("phash:") + pl.col("phash").cast(pl.Utf8)))
    parts.append(images.filter(~pl.col("has_bytes") & pl.col("url").is_not_null()).select(
        "key", "pos", kind=pl.lit("url"), ident=pl.lit("url:") + pl.col("url")))
    return pl.concat(parts)


def repeated_images(images: pl.DataFrame, cfg: RepeatConfig
                    ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Repeated images of the corpus and the policy's action.

    Args:
        images: :data:`~mm_assets.core.schemas.DOC_IMAGES` rows of every document.

    Returns:
        ``(rows, groups)``: :data:`~mm_assets.core.schemas.DOC_REPEAT_IMAGES` — one row per
        image whose identity is in >= 2 documents, ``action`` drop / keep — and
        :data:`~mm_assets.core.schemas.DOC_REPEAT_GROUPS`, one row per such identity.
    """
    ids = _identities(images, cfg)
    n_docs = ids.group_by("ident").agg(pl.col("key").n_unique().alias("n_docs"),
                                       pl.len().alias("n_images"),
                                       pl.col("key").min().alias("example_key"),
                                       pl.col("kind").first())
    multi = n_docs.filter(pl.col("n_docs") >= 2)
    action = (pl.when((pl.col("n_docs") > cfg.max_docs_per_image) & cfg.drop_repeated)
              .then(pl.lit(DROP)).otherwise(pl.lit(KEEP)))
    groups = (multi.with_columns(action.alias("action"))
              .select(pl.col("ident").alias("group_id"), "kind",
                      pl.col("n_docs").cast(pl.Int32), pl.col("n_images").cast(pl.Int32),
                      "action", "example_key")
              .sort("n_docs", "group_id", descending=[True, False]))
    best = (ids.join(multi.select("ident", "n_docs"), on="ident")
            .sort("n_docs", "ident", descending=[True, False])
            .unique(["key", "pos"], keep="first", maintain_order=True))
    rows = (best.with_columns(action.alias("action"))
            .select("key", pl.col("pos").cast(pl.Int32), pl.col("ident").alias("group_id"),
                    "kind", pl.col("n_docs").cast(pl.Int32), "action")
            .sort("key", "pos"))
    return (rows.select(list(schemas.DOC_REPEAT_IMAGES)),
            groups.select(list(schemas.DOC_REPEAT_GROUPS)))


def duplicate_documents(docs: pl.DataFrame, cfg: RepeatConfig) -> pl.DataFrame:
    """Exact-duplicate documents (same ``doc_hash``) as
    :data:`~mm_assets.core.schemas.DOC_DUPLICATES`: members of groups of >= 2, the smallest
    key kept, the others ``remove`` (``keep`` for all when the policy is off)."""
    g = (docs.group_by("doc_hash").agg(pl.col("key").sort(), pl.len().alias("group_size"))
         .filter(pl.col("group_size") >= 2))
    out = (g.with_columns(pl.col("key").list.first().alias("representative"))
           .explode("key")
           .with_columns(pl.when((pl.col("key") != pl.col("representative"))
                                 & cfg.drop_duplicate_documents)
                         .then(pl.lit(REMOVE)).otherwise(pl.lit(KEEP)).alias("action"))
           .select("key", pl.col("doc_hash").alias("group_id"),
                   pl.col("group_size").cast(pl.Int32), "representative", "action")
           .sort("group_id", "key"))
    return out


def removals_by_shard(rows: pl.DataFrame, dups: pl.DataFrame, key_shard: pl.DataFrame
                      ) -> dict[str, pl.DataFrame]:
    """The policies' removals split per doc shard, for ``docs_curated`` to read only its own.

    Args:
        rows: :data:`~mm_assets.core.schemas.DOC_REPEAT_IMAGES` (:func:`repeated_images`).
        dups: :data:`~mm_assets.core.schemas.DOC_DUPLICATES` (:func:`duplicate_documents`).
        key_shard: ``(key, shard)`` of every document of the corpus.

    Returns:
        ``shard -> DOC_DECISIONS rows`` (status ``removed``) sorted by (key, pos): one per image
        to drop (``repeated_image``, its position) and one per duplicate document to remove
        (``duplicate_document``, pos -1); every shard of ``key_shard`` is present (empty when
        nothing of it is removed).

    Raises:
        ValueError: a removal names a key that ``key_shard`` does not have.
    """
    imgs = rows.filter(pl.col("action") == DROP).select(
        "key", pl.col("pos").cast(pl.Int32), status=pl.lit("removed"),
        reason=pl.lit("repeated_image"))
    docs = dups.filter(pl.col("action") == REMOVE).select(
        "key", pos=pl.lit(-1, pl.Int32), status=pl.lit("removed"),
        reason=pl.lit("duplicate_document"))
    both = pl.concat([imgs, docs]).join(key_shard, on="key", how="left")
    lost = both.filter(pl.col("shard").is_null())
    if lost.height:
        raise ValueError(f"{lost.height} removal(s) name keys of no doc shard, e.g. "
                         f"{lost['key'][0]!r}")
    parts = {s: df.drop("shard").sort("key", "pos")
             for (s,), df in both.partition_by("shard", as_dict=True).items()}
    empty = pl.DataFrame(schema=schemas.DOC_DECISIONS)
    return {s: parts.get(s, empty).select(list(schemas.DOC_DECISIONS))
            for s in key_shard["shard"].unique().sort().to_list()}


def apply_policies(doc: Document, drop_pos: set[int], remove_reason: str | None
                   ) -> tuple[Document | None, list[dict]]:
    """``doc`` with the image segments at ``drop_pos`` removed (order of the rest kept), or
    ``None`` when the whole document is removed (``remove_reason``, or nothing left).

    Returns:
        The document (or ``None``) and its :data:`~mm_assets.core.schemas.DOC_DECISIONS`
        rows: one for the document (``pos`` -1) and one per removed image (its position in
        the input document; ``removed_with_document`` when the document goes).
    """
    rows = []
    if remove_reason is None:
        kept = [s for i, s in enumerate(doc.segments) if i not in drop_pos]
        rows += [{"key": doc.key, "pos": i, "status": "removed", "reason": "repeated_image"}
                 for i in sorted(drop_pos)]
        if kept:
            meta = {**doc.meta, "removed_images": sorted(drop_pos)} if drop_pos else doc.meta
            out = Document(doc.key, doc.source, kept, meta)
            return out, [{"key": doc.key, "pos": -1, "status": "kept", "reason": None}, *rows]
        remove_reason = "no_segments_left"
    rows = [{"key": doc.key, "pos": -1, "status": "removed", "reason": remove_reason}]
    rows += [{"key": doc.key, "pos": i, "status": "removed",
              "reason": "repeated_image" if i in drop_pos else "removed_with_document"}
             for i, s in enumerate(doc.segments) if isinstance(s, ImageSeg)]
    return None, rows
