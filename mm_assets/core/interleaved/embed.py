"""Embeddings of document images and their clusters.

Each image segment with bytes gets the corpus image encoder's vector (the ``embedder``
resource, EfficientNet-Lite0 by default), through the same content-addressed per-image store
as the conversation corpus (:mod:`mm_assets.core.semantic.embed_cache`; segment
``docs-{shard}``), so an image shared by documents and conversations is embedded once.
URL-only images have no vector (they are not downloaded). Clusters: spherical k-means
(FAISS, :func:`mm_assets.core.semantic.cluster.spherical_kmeans`) over every document image.

Memory: one doc shard's distinct images (bytes) and their (M, D) float32 vectors.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import numpy as np
import polars as pl

from mm_assets.core import schemas
from mm_assets.core.dedup.hashing import bytes_hash
from mm_assets.core.interleaved.doc import Document, ImageSeg
from mm_assets.core.semantic.embed_cache import MAX_PIXELS, ImageEmbeddingStore, distinct_vectors
from mm_assets.core.semantic.encoders import ImageEncoder


def doc_segment(shard: str) -> str:
    """Name of a doc shard's segment in the per-image embedding store."""
    return f"docs-{shard}"


def embed_doc_images(docs: Iterable[Document], enc: ImageEncoder, cache: ImageEmbeddingStore,
                     segment: str, batch_size: int = 32, num_workers: int = 0,
                     draft: bool = True) -> tuple[pl.DataFrame, np.ndarray, Counter]:
    """Vectors of the image segments with bytes of ``docs``.

    Returns:
        ``(keys, vectors, failed)``: :data:`~mm_assets.core.schemas.DOC_EMBEDDING_KEYS`
        rows (key, pos) aligned with ``vectors`` (M, D) float16, L2-normalised; ``failed``:
        images that did not decode, per reason (no row).
    """
    refs, blobs = [], {}
    for d in docs:
        for pos, s in enumerate(d.segments):
            if isinstance(s, ImageSeg) and s.data is not None:
                h = bytes_hash(s.data)
                blobs.setdefault(h, s.data)
                refs.append((d.key, pos, h))
    vecs, reasons, _ = distinct_vectors(blobs, cache, segment, enc, batch_size, num_workers,
                                        MAX_PIXELS, draft)
    at = {h: i for i, h in enumerate(blobs)}
    ok = [(k, p, at[h]) for k, p, h in refs if not reasons[at[h]]]
    failed = Counter(reasons[at[h]] for _, _, h in refs if reasons[at[h]])
    keys = pl.DataFrame({"key": [k for k, _, _ in ok], "pos": [p for _, p, _ in ok]},
                        schema=schemas.DOC_EMBEDDING_KEYS)
    out = vecs[[i for _, _, i in ok]] if ok else np.zeros((0, enc.dim), np.float32)
    out = out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return keys, out.astype(np.float16), failed
