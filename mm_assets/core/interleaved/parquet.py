"""Parquet readers (:mod:`.readers` describes the formats): OBELICS rows (``metadata``
aligned with the positions, ``general_metadata``) and MINT-1T HTML rows (per-image columns in
image order). Images are URL-only references. Memory: one record batch of
:data:`~.readers.PARQUET_BATCH` rows at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Any

from mm_assets.core.ingest.formats import make_key
from mm_assets.core.interleaved.doc import Document
from mm_assets.core.interleaved.readers import (
    PARQUET_BATCH,
    Record,
    _json_value,
    aligned_segments,
    guard_record,
)


def parquet_doc(row: dict[str, Any], slug: str, index: int) -> Document:
    """One OBELICS row as a document (images are URL-only references).

    Raises:
        DocumentError: ``misaligned`` / ``bad_text``.
    """
    metas = _json_value(row.get("metadata"))
    segments = aligned_segments(row.get("texts"), row.get("images"), metas)
    meta: dict[str, Any] = {}
    for k, v in row.items():
        if k in ("texts", "images", "metadata"):
            continue
        meta[k] = _json_value(v) if k == "general_metadata" else v
    return Document(make_key(slug, index, None), slug, segments, meta)


MINT1T_IMAGE_COLUMNS = ("images_metadata", "image_hashes")


def mint1t_html_doc(row: dict[str, Any], slug: str, index: int) -> Document:
    """One MINT-1T HTML row as a document (images URL-only). ``images_metadata[j]`` (a dict,
    or a JSON string of one) and ``image_hashes[j]`` (as ``meta["image_hash"]``) go to the
    *j*-th image when the lists have one entry per image; a list of another length stays in
    the document's ``meta`` under its column name (with ``unaligned_image_columns``).

    Raises:
        DocumentError: ``misaligned`` / ``bad_text``.
    """
    texts, images = row.get("texts"), row.get("images")
    n_img = sum(im is not None for im in images) if isinstance(images, list) else -1
    per_image: dict[str, list] = {}
    meta: dict[str, Any] = {}
    for k, v in row.items():
        if k in ("texts", "images"):
            continue
        v = _json_value(v) if k in ("metadata", *MINT1T_IMAGE_COLUMNS) else v
        if k in MINT1T_IMAGE_COLUMNS and isinstance(v, list) and len(v) == n_img:
            per_image[k] = v
        else:
            meta[k] = v
    unaligned = [k for k in MINT1T_IMAGE_COLUMNS if k in meta and meta[k] is not None]
    if unaligned:
        meta["unaligned_image_columns"] = unaligned
    metas: list | None = None
    if per_image and isinstance(images, list):
        metas, j = [], 0
        for im in images:
            if im is None:
                metas.append(None)
                continue
            m = _json_value(per_image.get("images_metadata", [None] * n_img)[j])
            m = dict(m) if isinstance(m, dict) else {}
            if "image_hashes" in per_image:
                m["image_hash"] = per_image["image_hashes"][j]
            metas.append(m)
            j += 1
    segments = aligned_segments(texts, images, metas)
    return Document(make_key(slug, index, None), slug, segments, meta)


def iter_parquet(f: IO[bytes], slug: str, start: int = 0, stop: int | None = None,
                 make=parquet_doc) -> Iterator[Record]:
    """Records ``start .. stop-1`` of an OBELICS / MINT-1T HTML Parquet file (whole record
    batches before ``start`` are skipped without converting them to Python); ``make`` turns
    a row into a document (:func:`parquet_doc`, :func:`mint1t_html_doc`)."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(f)
    base = 0
    for batch in pf.iter_batches(batch_size=PARQUET_BATCH):
        n = batch.num_rows
        if base + n <= start:
            base += n
            continue
        if stop is not None and base >= stop:
            return
        for off, row in enumerate(batch.to_pylist()):
            i = base + off
            if i < start or (stop is not None and i >= stop):
                continue
            yield guard_record(i, f"{slug}:{i}", lambda r=row, i=i: make(r, slug, i))
        base += n
