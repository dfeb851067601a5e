"""Hashes of interleaved documents: per image segment and per document.

Per image (:data:`~mm_assets.core.schemas.DOC_IMAGES`): the same hashes as the conversation
corpus (:mod:`mm_assets.core.dedup.hashing`): xxh3-128 of the bytes, of the normalised pixels,
and the 64-bit pHash; URL-only images carry their URL and null hashes.

Per document (:data:`~mm_assets.core.schemas.DOC_TABLE`): ``doc_hash`` = xxh3-128 over the
ordered segment list, each segment as ``t:{text_hash}`` (NFKC, case-folded,
whitespace-collapsed text, :func:`~mm_assets.core.dedup.hashing.text_hash`), ``i:{bytes
hash}`` or ``u:{url}`` (URL-only) — two documents hash alike exactly when they have the same
texts (up to case and spacing) and the same images in the same order.

Cost: one decode per image with bytes; memory one document at a time plus the table rows.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl
import xxhash

from mm_assets.core import schemas
from mm_assets.core.dedup.hashing import hash_image, text_hash
from mm_assets.core.interleaved.doc import Document, ImageSeg, TextSeg


def segment_ids(doc: Document, image_hashes: dict[int, str] | None = None) -> list[str]:
    """The per-segment identities the document hash is made of (see module docstring).

    Args:
        image_hashes: position -> bytes hash already computed (else hashed here).
    """
    out = []
    for pos, s in enumerate(doc.segments):
        if isinstance(s, TextSeg):
            out.append("t:" + text_hash(s.text))
        elif s.data is not None:
            out.append("i:" + ((image_hashes or {}).get(pos) or xxhash.xxh3_128_hexdigest(s.data)))
        else:
            out.append("u:" + (s.url or ""))
    return out


def doc_hash(doc: Document, image_hashes: dict[int, str] | None = None) -> str:
    """xxh3-128 (32 hex) of the ordered segment identities of ``doc``."""
    return xxhash.xxh3_128_hexdigest("\x1f".join(segment_ids(doc, image_hashes)).encode())


def hash_docs(docs: Iterable[Document], max_pixels: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Image and document hash tables of ``docs``.

    Returns:
        ``(images, documents)`` with :data:`~mm_assets.core.schemas.DOC_IMAGES` (one row per
        image segment, ``pos`` its segment position; ``reason`` set when it does not decode)
        and :data:`~mm_assets.core.schemas.DOC_TABLE` columns.
    """
    images, rows = [], []
    for doc in docs:
        bh: dict[int, str] = {}
        for pos, s in enumerate(doc.segments):
            if not isinstance(s, ImageSeg):
                continue
            row = {"key": doc.key, "pos": pos, "url": s.url, "has_bytes": s.data is not None,
                   "bytes_hash": None, "pixel_hash": None, "phash": None,
                   "width": s.width, "height": s.height, "reason": None}
            if s.data is not None:
                h = hash_image(s.data, max_pixels)
                bh[pos] = h.bytes_hash
                row.update(bytes_hash=h.bytes_hash, pixel_hash=h.pixel_hash, phash=h.phash,
                           reason=h.error)
                if h.error is None:
                    row.update(width=h.width, height=h.height)
            images.append(row)
        rows.append({"key": doc.key, "source": doc.source, "n_segments": len(doc.segments),
                     "n_texts": len(doc.texts), "n_images": doc.n_images,
                     "n_url_only": doc.n_url_only, "doc_hash": doc_hash(doc, bh)})
    return (pl.DataFrame(images, schema=schemas.DOC_IMAGES),
            pl.DataFrame(rows, schema=schemas.DOC_TABLE))
