"""Each distinct image embedded once: a content-addressed store of per-image vectors.

Images are keyed by the xxh3-128 of their encoded bytes (the ``bytes_hashes`` of
``image_hashes``, :func:`~mm_assets.core.dedup.hashing.bytes_hash`) and the store is scoped by
an encoder fingerprint (model, weights, backend, device type, decode settings), so another
encoder never reads these vectors. Layout under the storage root::

    image_embeddings/{fingerprint}/{segment}.npy      (M, D) float32, L2-normalised, as the
                                                      encoder returned them
    image_embeddings/{fingerprint}/{segment}.parquet  hash (Utf8), row (Int32, -1 when the
                                                      image failed to decode), reason (Utf8)

A segment is the shard whose ``embeddings`` run first embedded those images. A shard's run
looks its distinct hashes up in every other segment, carries over what its own previous segment
holds (so a re-run rewrites it byte for byte), embeds only what is still missing (one forward per
distinct image) and writes its segment. Per-sample vectors are pooled from these per-image
float32 vectors exactly as :func:`~mm_assets.core.semantic.embed.embed_shard` pools freshly
computed ones, so they are bit-identical for an encoder whose output does not depend on batch
composition. Two shards embedding the same new image concurrently both store it (counted as
forwards; the lookup then prefers the smallest segment name): wasteful, never wrong.

Memory and I/O per shard run: the hash column of every segment (≈ 50 B per distinct image
in the corpus, read once per process and reused across the run's partitions) plus the shard's
own vectors. Disk: 4·D bytes per distinct image (5 KB at D = 1280).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import polars as pl
import xxhash

from mm_assets.core import layout, schemas
from mm_assets.core.dedup.hashing import bytes_hash
from mm_assets.core.ingest.images import DEFAULT_MAX_PIXELS
from mm_assets.core.records import Sample
from mm_assets.core.semantic.embed import ShardEmbeddings, embed_images, pool_images
from mm_assets.core.semantic.encoders import ImageEncoder, MiniLMTextEncoder
from mm_assets.core.storage import Store

ROOT = layout.IMAGE_EMBEDDINGS
MAX_PIXELS = DEFAULT_MAX_PIXELS  # decode cap, as embed_shard's default
SEGMENT_SCHEMA = schemas.IMAGE_EMBEDDING_SEGMENT


def encoder_fingerprint(enc: ImageEncoder, draft: bool, max_pixels: int) -> str:
    """16 hex chars identifying what an image's vector depends on besides its bytes.

    Covers model name, weights tag/path, backend, output dim, device type (``cuda`` runs bf16
    autocast, so its vectors differ from ``cpu``), JPEG draft decoding and the pixel cap.
    """
    spec = {"name": enc.name, "pretrained": enc.pretrained, "dim": enc.dim,
            "backend": getattr(enc, "backend", "torch"), "device": enc.device.split(":")[0],
            "draft": bool(draft), "max_pixels": int(max_pixels)}
    return xxhash.xxh3_64_hexdigest(json.dumps(spec, sort_keys=True).encode())


def cache_dir(fingerprint: str) -> str:
    return layout.image_embeddings_dir(fingerprint)


@dataclass(slots=True)
class CacheStats:
    """What one shard's run did.

    Attributes:
        images: images over the shard's samples (with repeats).
        distinct: distinct image hashes in the shard.
        reused: distinct images found in another segment (no forward).
        carried: distinct images found in the shard's own previous segment (no forward).
        forwards: images sent through the encoder (= distinct - reused - carried).
    """

    images: int = 0
    distinct: int = 0
    reused: int = 0
    carried: int = 0
    forwards: int = 0

    def as_metadata(self) -> dict[str, int]:
        return {f"cache_{k}": getattr(self, k) for k in self.__slots__}


class ImageEmbeddingStore:
    """The per-encoder content-addressed store (see module doc).

    Args:
        store: storage root.
        fingerprint: :func:`encoder_fingerprint` of the encoder.
        dim: vector dimension D.
    """

    def __init__(self, store: Store, fingerprint: str, dim: int):
        self.store, self.fingerprint, self.dim = store, fingerprint, dim
        self._index: pl.DataFrame | None = None

    def _rel(self, segment: str, ext: str) -> str:
        return layout.image_embeddings_segment(self.fingerprint, segment, ext)

    def segments(self) -> list[str]:
        return [n[: -len(".parquet")] for n in self.store.ls(cache_dir(self.fingerprint),
                                                            ".parquet")]

    def index(self) -> pl.DataFrame:
        """``hash, row, reason, segment`` over every segment, one row per (hash, segment)."""
        if self._index is None:
            frames = [self.store.read_table(self._rel(s, "parquet"), SEGMENT_SCHEMA).with_columns(
                pl.lit(s).alias("segment")) for s in self.segments()]
            self._index = (pl.concat(frames) if frames else
                           pl.DataFrame(schema={**SEGMENT_SCHEMA, "segment": pl.Utf8}))
        return self._index

    def vectors(self, segment: str, rows: np.ndarray) -> np.ndarray:
        """(len(rows), D) float32 rows of one segment (memory-mapped on a local root)."""
        if len(rows) == 0:
            return np.zeros((0, self.dim), np.float32)
        return np.asarray(self.store.read_npy(self._rel(segment, "npy"))[rows], np.float32)

    def write_segment(self, segment: str, hashes: list[str], vecs: np.ndarray,
                      reasons: list[str]) -> None:
        """Write one segment: ``vecs`` (M_ok, D) float32 for the hashes whose reason is ``""``.

        The vectors are written before the table, so a listed segment always has its vectors.
        """
        rows, r = [], 0
        for reason in reasons:
            rows.append(-1 if reason else r)
            r += 0 if reason else 1
        if vecs.shape != (r, self.dim):
            raise ValueError(f"segment {segment}: {vecs.shape} vectors for {r} decoded images")
        self.store.write_npy(self._rel(segment, "npy"), np.ascontiguousarray(vecs, np.float32))
        self.store.write_table(self._rel(segment, "parquet"), pl.DataFrame(
            {"hash": hashes, "row": rows, "reason": [x or None for x in reasons]},
            schema=SEGMENT_SCHEMA), SEGMENT_SCHEMA)
        if self._index is not None:  # keep the run's index current without re-reading it
            mine = pl.DataFrame({"hash": hashes, "row": rows, "reason": [x or None for x in reasons],
                                 "segment": [segment] * len(hashes)},
                                schema={**SEGMENT_SCHEMA, "segment": pl.Utf8})
            self._index = pl.concat([self._index.filter(pl.col("segment") != segment), mine])


def _gather(cache: ImageEmbeddingStore, hits: pl.DataFrame, n: int, pos: dict[str, int]
            ) -> tuple[np.ndarray, list[str]]:
    """Vectors and reasons of ``hits`` (hash, row, reason, segment) at their ``pos`` index."""
    vecs = np.zeros((n, cache.dim), np.float32)
    reasons = [""] * n
    for (seg,), part in hits.group_by("segment"):
        ok = part.filter(pl.col("row") >= 0)
        at = [pos[h] for h in ok["hash"].to_list()]
        vecs[at] = cache.vectors(seg, ok["row"].to_numpy())
        for h, r in part.filter(pl.col("row") < 0).select("hash", "reason").iter_rows():
            reasons[pos[h]] = r or "corrupt_image"
    return vecs, reasons


def distinct_vectors(blobs: dict[str, bytes], cache: ImageEmbeddingStore, segment: str,
                     image_enc: ImageEncoder, batch_size: int, num_workers: int,
                     max_pixels: int, draft: bool) -> tuple[np.ndarray, list[str], CacheStats]:
    """Vectors of distinct images (``hash -> bytes``, in first-occurrence order).

    Writes ``segment`` with the images it embeds or carries over.

    Returns:
        ``((H, D) float32 (zero rows for failures), reasons ("" = ok), stats)`` in the order
        of ``blobs``.
    """
    hashes = list(blobs)
    pos = {h: i for i, h in enumerate(hashes)}
    idx = cache.index().filter(pl.col("hash").is_in(hashes))
    other = idx.filter(pl.col("segment") != segment).sort("segment").unique(
        "hash", keep="first", maintain_order=True)
    own = idx.filter((pl.col("segment") == segment)
                     & ~pl.col("hash").is_in(other["hash"].implode()))
    vecs, reasons = _gather(cache, pl.concat([other, own]), len(hashes), pos)
    found = set(other["hash"].to_list()) | set(own["hash"].to_list())
    missing = [h for h in hashes if h not in found]
    new, errs = embed_images([blobs[h] for h in missing], image_enc, batch_size, num_workers,
                             max_pixels, draft)
    ok = [pos[h] for h, e in zip(missing, errs, strict=True) if not e]
    vecs[ok] = new
    for h, e in zip(missing, errs, strict=True):
        reasons[pos[h]] = e
    mine = [h for h in hashes if h not in set(other["hash"].to_list())]
    at = [pos[h] for h in mine]
    cache.write_segment(segment, mine, vecs[[i for i in at if not reasons[i]]],
                        [reasons[i] for i in at])
    stats = CacheStats(0, len(hashes), other.height, own.height, len(missing))
    return vecs, reasons, stats


def embed_shard_cached(samples: list[Sample], image_enc: ImageEncoder,
                       text_enc: MiniLMTextEncoder, cache: ImageEmbeddingStore, segment: str,
                       batch_size: int = 32, num_workers: int = 0,
                       max_pixels: int = MAX_PIXELS, draft: bool = True
                       ) -> tuple[ShardEmbeddings, CacheStats]:
    """:func:`~mm_assets.core.semantic.embed.embed_shard` with one forward per distinct image
    not yet in ``cache`` (same outputs, same quarantine rules).

    Args:
        samples: the shard's samples.
        cache: store for this encoder (its fingerprint must match ``image_enc`` and the decode
            settings; the asset builds both from the same resource).
        segment: name of this shard's segment (the shard id).

    Returns:
        The shard's embeddings and what the cache saved.
    """
    img = [s for s in samples if s.images]
    txt = [s for s in samples if not s.images]
    flat = [bytes_hash(b) for s in img for b in s.images]
    blobs: dict[str, bytes] = {}
    for h, b in zip(flat, (b for s in img for b in s.images), strict=True):
        blobs.setdefault(h, b)
    vecs, reasons, stats = distinct_vectors(blobs, cache, segment, image_enc, batch_size,
                                            num_workers, max_pixels, draft)
    pos = {h: i for i, h in enumerate(blobs)}
    errors = [reasons[pos[h]] for h in flat]
    ok_rows = [pos[h] for h, e in zip(flat, errors, strict=True) if not e]
    keys, pooled, bad = pool_images(img, vecs[ok_rows], errors, image_enc.dim)
    stats.images = len(flat)
    tvec = text_enc.encode([s.text() for s in txt], batch_size)
    return ShardEmbeddings(keys, pooled, [s.key for s in txt], tvec.astype(np.float16),
                           bad), stats
