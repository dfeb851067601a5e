"""One pool shard: read, hash, embed and assign each image to the corpus image centroids.

Input: a WebDataset ``.tar`` of image + caption samples (see :mod:`.pool`). Per sample, the
image is the first member among ``jpg, jpeg, png, webp`` (any case; other members are
ignored); the caption is ``txt`` (UTF-8), else the ``caption`` / ``text`` field of ``json``.
Outcomes (stage ``pool_assign``):

- usable: a row of :data:`~mm_assets.core.schemas.POOL_ASSIGN` and a vector row;
- quarantined, with its reason: ``missing_image``, ``missing_caption`` (no txt and no caption
  field), ``empty_caption`` (whitespace only), ``bad_caption`` (not UTF-8 / bad JSON),
  ``duplicate_key`` (a WebDataset key seen twice in the shard), the decoder's reason
  (``corrupt_image``: no decoder reads it, garbage after a JPEG marker included;
  ``truncated_image``: the header parsed but the data ends early; ``decompression_bomb``,
  ``empty_image``, ``zero_size_image``), ``truncated_tar`` (one record for an archive that
  ends early; what came before it is kept) and ``not_a_tar`` (one record for a file whose
  first block is no tar header: nothing was read). ``n_in = n_out + n_quarantined``.

Each row records its sample's byte span in the tar (``span_start``, ``span_end``:
:func:`~mm_assets.core.shards.iter_tar_spans`), so ``mined`` reads only the selected samples
(range reads, also on object stores) instead of the shard up to its last selected sample.

Hashes are those of ``image_hashes`` (:func:`~mm_assets.core.dedup.hashing.hash_image`:
xxh3-128 of the bytes, xxh3-128 of the normalised pixels, pHash and mirrored pHash), so a pool
image and a corpus image compare directly. Vectors: the corpus encoder
(:func:`~mm_assets.core.semantic.embed.embed_images`, same preprocessing, same JPEG draft
rule), L2-normalised, stored as float16; assignment uses the stored float16 values.

Assignment (:func:`assign_vectors`): exact inner-product search (FAISS ``IndexFlatIP``, on the
GPU with ``device="cuda"``) of each vector against the K L2-normalised centroids, k = 2:
nearest ``cluster`` / ``sim`` (cosine) and second-nearest ``cluster2`` / ``sim2``, the
margin being ``sim - sim2`` (DataComp's image-based clustering filter keeps pool samples by
nearest centroid: Gadre et al. 2023, "DataComp", arXiv:2304.14108, section 3.4).

Cost per pool sample: on disk 2·D bytes of vectors (2,560 B at D = 1280) + ≈ 80-200 B of
Parquet row (zstd; 82 B/row measured on 10k rows with 65-character captions from a small
vocabulary, two 32-hex hashes; real captions compress less): ≈ 2.7 KB, so ≈ 2.7 TB per 1B
pool images, 95 % of it vectors. In memory while a shard runs: ``chunk_size`` encoded images
(≈ 25 KB each for DataComp-size JPEGs) + the shard's (N, D) float16 vectors (25 MB for a
10k-sample shard) + a float32 search block (4·D·``block_rows`` B, 84 MB at the default; set
``block_rows`` lower on small pods) + the table (≈ 240 B/row in polars). The global mining step
reads only tables (≈ 125 B/row for key, cluster, sim, sim2 and the four hashes) and the
vectors of the candidates it keeps, never images or all vectors at once.
"""

from __future__ import annotations

import io
import json
import tarfile
import time
from collections import Counter
from dataclasses import dataclass, field

import fsspec
import numpy as np
import polars as pl

from mm_assets.core import schemas
from mm_assets.core.dedup.hashing import hash_image
from mm_assets.core.ingest.images import DEFAULT_MAX_PIXELS
from mm_assets.core.mine import STAGE
from mm_assets.core.records import Quarantined, StageCounts
from mm_assets.core.semantic.embed import embed_images
from mm_assets.core.shards import iter_tar_spans

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


@dataclass(frozen=True, slots=True)
class AssignConfig:
    """Settings of ``pool_assign``.

    Attributes:
        device: ``cpu`` or ``cuda`` / ``cuda:N`` for the FAISS search (``cuda`` needs the
            ``faiss-gpu`` build and a GPU; refused with a clear error otherwise).
        chunk_size: samples hashed and embedded together (bounds the images held in memory).
        block_rows: vectors searched per FAISS call (bounds the float32 copy: 4·D·rows B).
        max_pixels: decode cap in pixels (larger images: ``decompression_bomb``).
    """

    device: str = "cpu"
    chunk_size: int = 1024
    block_rows: int = 16384
    max_pixels: int = DEFAULT_MAX_PIXELS

    def __post_init__(self) -> None:
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        if self.chunk_size < 1 or self.block_rows < 1 or self.max_pixels < 1:
            raise ValueError(f"chunk_size, block_rows and max_pixels must be >= 1: {self}")


def centroid_index(centroids: np.ndarray, device: str = "cpu"):
    """FAISS inner-product index over ``centroids`` (K, D), rows L2-normalised here.

    Raises:
        ValueError: centroids not 2-D or empty.
        RuntimeError: ``device`` is cuda but this faiss has no GPU support or sees no GPU.
    """
    import faiss

    if centroids.ndim != 2 or centroids.shape[0] == 0:
        raise ValueError(f"centroids must be (K, D) with K >= 1, got {centroids.shape}")
    c = np.ascontiguousarray(centroids, dtype=np.float32)
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    index = faiss.IndexFlatIP(c.shape[1])
    index.add(c)
    if device == "cpu":
        return index
    gpus = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
    if not hasattr(faiss, "StandardGpuResources") or gpus == 0:
        raise RuntimeError(f"device={device!r}: this faiss {faiss.__version__} has no GPU "
                           f"support or sees no GPU (get_num_gpus()={gpus}); install "
                           "faiss-gpu instead of faiss-cpu, or use device='cpu'")
    gpu = int(device.split(":")[1]) if ":" in device else 0
    return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), gpu, index)


def assign_vectors(x: np.ndarray, index, block_rows: int = 16384
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Nearest and second-nearest centroid of each row.

    Args:
        x: (N, D) float16 or float32 vectors, L2-normalised.
        index: :func:`centroid_index` (K centroids).
        block_rows: rows converted to float32 and searched at a time.

    Returns:
        ``cluster (N,) int32, sim (N,) float32, cluster2 (N,) int32, sim2 (N,) float32``;
        with K = 1, ``cluster2`` is -1 and ``sim2`` NaN.

    Raises:
        ValueError: ``x`` is not (N, index.d).
    """
    n, d = x.shape
    if d != index.d:
        raise ValueError(f"vectors have D={d}, centroids D={index.d}")
    k = min(2, index.ntotal)
    ids = np.full((n, 2), -1, np.int64)
    sims = np.full((n, 2), np.nan, np.float32)
    for lo in range(0, n, block_rows):
        s, i = index.search(np.ascontiguousarray(x[lo:lo + block_rows], dtype=np.float32), k)
        sims[lo:lo + len(s), :k], ids[lo:lo + len(s), :k] = s, i
    return (ids[:, 0].astype(np.int32), sims[:, 0].copy(), ids[:, 1].astype(np.int32),
            sims[:, 1].copy())


@dataclass(slots=True)
class PoolShardResult:
    """What one pool shard produced.

    Attributes:
        table: :data:`~mm_assets.core.schemas.POOL_ASSIGN` rows, ``row`` = 0..N-1.
        vectors: (N, D) float16, L2-normalised; row i belongs to ``table`` row i.
        quarantined: unusable samples with their reason.
        counts: n_in = n_out + quarantined.
        seconds: wall time of read+hash, embed and assign (s).
    """

    table: pl.DataFrame
    vectors: np.ndarray
    quarantined: list[Quarantined]
    counts: StageCounts
    seconds: dict[str, float] = field(default_factory=dict)


def _caption(parts: dict[str, bytes]) -> tuple[str | None, str | None]:
    """``(caption, None)`` or ``(None, reason)``."""
    try:
        if "txt" in parts:
            text = parts["txt"].decode("utf-8")
        elif "json" in parts:
            obj = json.loads(parts["json"].decode("utf-8"))
            text = obj.get("caption") or obj.get("text") if isinstance(obj, dict) else None
            if not isinstance(text, str):
                return None, "missing_caption"
        else:
            return None, "missing_caption"
    except (UnicodeDecodeError, ValueError):
        return None, "bad_caption"
    return (text.strip(), None) if text.strip() else (None, "empty_caption")


def _tar_head_reason(url: str) -> str:
    """``not_a_tar`` when the file's first 512-byte block is no tar header (checksum and
    ustar/GNU magic), else ``truncated_tar``."""
    with fsspec.open(url, "rb") as f:
        head = f.read(tarfile.BLOCKSIZE)
    if len(head) == tarfile.BLOCKSIZE:
        try:
            tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
            return "truncated_tar"
        except tarfile.HeaderError:
            return "not_a_tar"
    return "truncated_tar" if head[257:262] == b"ustar" else "not_a_tar"


def decoder_reason(data: bytes, reason: str) -> str:
    """The decoder's quarantine reason for undecodable ``data``: Pillow reports garbage after a
    JPEG start marker as a truncated file ("Truncated File Read" while parsing markers);
    ``truncated_image`` is kept only when the header parsed (a real image cut short), anything
    else is ``corrupt_image`` (what corpus ingest names bytes no decoder reads)."""
    if reason != "truncated_image":
        return reason
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)):
            return reason
    except (OSError, ValueError, SyntaxError):  # Pillow: UnidentifiedImageError is an OSError
        return "corrupt_image"


def read_pool_shard(url: str, pool: str, stem: str, quarantined: list[Quarantined]):
    """Yield ``(wds_key, image bytes, caption, (span_start, span_end) | None)`` of the usable
    samples of one shard (one pass, one sample in memory); unusable ones go to
    ``quarantined``."""
    seen: set[str] = set()
    read_any = False

    def bad(wds_key: str, reason: str, error: str) -> None:
        quarantined.append(Quarantined(f"{pool}/{stem}/{wds_key}", STAGE, reason, error,
                                       f"{url}:{wds_key}"))

    try:
        with fsspec.open(url, "rb") as f:
            for wds_key, parts, span in iter_tar_spans(f):
                read_any = True
                if wds_key in seen:
                    bad(wds_key, "duplicate_key", f"key {wds_key!r} appears twice")
                    continue
                seen.add(wds_key)
                parts = {e.lower(): v for e, v in parts.items()}  # JPG == jpg
                ext = next((e for e in IMAGE_EXTS if e in parts), None)
                if ext is None:
                    bad(wds_key, "missing_image", f"no {'/'.join(IMAGE_EXTS)} member "
                                                  f"(members: {sorted(parts)})")
                    continue
                caption, reason = _caption(parts)
                if reason:
                    bad(wds_key, reason, f"members: {sorted(parts)}")
                    continue
                yield wds_key, parts[ext], caption, span
    except (tarfile.TarError, EOFError, OSError) as e:
        reason = "truncated_tar" if read_any else _tar_head_reason(url)
        bad("_tail" if read_any else "_file", reason, f"{type(e).__name__}: {e}")


def _bad(pool: str, stem: str, url: str, wds_key: str, reason: str, error: str) -> Quarantined:
    return Quarantined(f"{pool}/{stem}/{wds_key}", STAGE, reason, error, f"{url}:{wds_key}")


def _chunks(it, size: int):
    buf = []
    for x in it:
        buf.append(x)
        if len(buf) == size:
            yield buf
            buf = []
    if buf:
        yield buf


def process_pool_shard(url: str, pool: str, stem: str, encoder, index, cfg: AssignConfig,
                       batch_size: int = 32, num_workers: int = 0, draft: bool = True
                       ) -> PoolShardResult:
    """Hash, embed and assign every sample of one pool shard (see module doc).

    Args:
        url: the shard (fsspec URL or path).
        pool, stem: the pool name and the shard stem (keys are ``{pool}/{stem}/{wds_key}``).
        encoder: the corpus :class:`~mm_assets.core.semantic.encoders.ImageEncoder`.
        index: :func:`centroid_index` of the corpus image centroids (same D as ``encoder``).
        cfg: chunk and block sizes, decode cap.
        batch_size, num_workers, draft: as :func:`~mm_assets.core.semantic.embed.embed_images`.

    Returns:
        The shard's table, vectors, quarantine and counts.

    Raises:
        ValueError: the encoder's dimension is not the centroids'.
    """
    if encoder.dim != index.d:
        raise ValueError(f"encoder {encoder.name} gives D={encoder.dim}, the corpus centroids "
                         f"have D={index.d}: not the corpus encoder")
    quarantined: list[Quarantined] = []
    rows: list[dict] = []
    vecs: list[np.ndarray] = []
    t = Counter()
    chunks = _chunks(read_pool_shard(url, pool, stem, quarantined), cfg.chunk_size)
    while True:
        t0 = time.perf_counter()  # reading the chunk's members counts as read_hash_s
        chunk = next(chunks, None)
        if chunk is None:
            t["read_hash_s"] += time.perf_counter() - t0
            break
        hashed = [(c, hash_image(c[1], cfg.max_pixels)) for c in chunk]
        for (wds_key, data, _, _), h in hashed:
            if h.error is not None:
                quarantined.append(_bad(pool, stem, url, wds_key, decoder_reason(data, h.error),
                                        "failed to decode"))
        hashed = [(c, h) for c, h in hashed if h.error is None]
        t1 = time.perf_counter()
        v, errors = embed_images([c[1] for c, _ in hashed], encoder, batch_size, num_workers,
                                 cfg.max_pixels, draft)
        t["embed_s"] += time.perf_counter() - t1
        t["read_hash_s"] += t1 - t0
        good = iter(range(len(v)))
        for ((wds_key, _, caption, span), h), err in zip(hashed, errors, strict=True):
            if err:
                quarantined.append(_bad(pool, stem, url, wds_key, err,
                                        "failed to decode for embedding"))
                continue
            vecs.append(v[next(good)])
            rows.append({"key": f"{pool}/{stem}/{wds_key}", "pool": pool, "shard": stem,
                         "wds_key": wds_key, "caption": caption, "bytes_hash": h.bytes_hash,
                         "pixel_hash": h.pixel_hash, "phash": h.phash,
                         "phash_flip": h.phash_flip, "width": h.width, "height": h.height,
                         "row": len(rows), "span_start": span[0] if span else None,
                         "span_end": span[1] if span else None})
    x = (np.stack(vecs) if vecs else np.zeros((0, encoder.dim), np.float32))
    x = (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float16)
    t0 = time.perf_counter()
    cluster, sim, cluster2, sim2 = assign_vectors(x, index, cfg.block_rows)
    t["assign_s"] = time.perf_counter() - t0
    cols = list(schemas.POOL_ASSIGN)
    base = pl.DataFrame(rows, schema={c: schemas.POOL_ASSIGN[c] for c in cols[:12] + cols[16:]})
    table = base.with_columns(pl.Series("cluster", cluster, pl.Int32),
                              pl.Series("sim", sim, pl.Float32),
                              pl.Series("cluster2", cluster2, pl.Int32),
                              pl.Series("sim2", sim2, pl.Float32)).select(cols)
    counts = StageCounts(table.height + len(quarantined), table.height,
                         quarantined=Counter(q.reason for q in quarantined))
    return PoolShardResult(table, x, quarantined, counts,
                           {k: round(v, 3) for k, v in t.items()})
