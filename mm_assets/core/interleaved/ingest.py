"""Interleaved ingest: inputs -> per-shard manifests (plan) -> document shards (build).

Plan (:func:`plan_doc_ingest`, ``mm-assets interleaved ingest``): each input file is counted
(:func:`~.readers.count_records`) and cut into record ranges of ``shard_size`` documents;
one manifest per shard, ``doc_inputs/{shard}.json`` = ``{"format", "input", "source",
"start", "stop", "image_root"}``. An input already ingested (same URL, size and first MiB) is
skipped, so re-running is idempotent. Runs under the root's ingest lock (shared with the
conversation ingest), so shard ids are allocated once.

Build (:func:`build_doc_shard`, asset ``interleaved_docs``): reads its range, validates every
image with bytes (content-sniffed extension, full decode with the decompression-bomb limit,
size filled in) and writes ``docs/{shard}.tar`` (:mod:`.shards`) plus the quarantine table.
Accounting, per shard:

- documents: ``n_in = n_out + quarantined`` (reasons: ``bad_json``, ``misaligned``,
  ``bad_matched_text_index``, ``empty_document``, ``bad_tar``, ...);
- images: ``images_in = images_with_bytes + images_url_only + images_dropped``; a dropped
  image (undecodable: ``corrupt_image``, ``truncated_image``, ``decompression_bomb``, ...; or
  ``missing_image`` with neither bytes nor URL) leaves its document with its reason recorded
  in ``doc.meta["dropped_images"]`` (original position, reason); URL-only images are kept.

Cost: one decode per image with bytes (Pillow); memory one document at a time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import fsspec

from mm_assets.core import layout
from mm_assets.core.ingest.formats import safe_id
from mm_assets.core.ingest.images import DEFAULT_MAX_PIXELS, ImageError, decode, sniff_ext
from mm_assets.core.ingest.lock import ingest_lock
from mm_assets.core.interleaved.doc import Document, ImageSeg
from mm_assets.core.interleaved.readers import FORMATS, count_records, iter_records
from mm_assets.core.interleaved.shards import write_docs
from mm_assets.core.records import Quarantined, StageCounts
from mm_assets.core.storage import Store

STAGE = "interleaved_docs"


@dataclass(frozen=True)
class DocIngestConfig:
    """Interleaved ingest settings.

    Attributes:
        shard_size: documents per shard (> 0).
        max_pixels: largest width × height of an image accepted (pixels; larger:
            ``decompression_bomb``).
        lock_wait_s: seconds to wait for another ingest into the same root.
    """

    shard_size: int = 1000
    max_pixels: int = DEFAULT_MAX_PIXELS
    lock_wait_s: float = 600.0

    def __post_init__(self) -> None:
        if self.shard_size <= 0:
            raise ValueError(f"shard_size must be > 0, got {self.shard_size}")
        if self.max_pixels <= 0:
            raise ValueError(f"max_pixels must be > 0, got {self.max_pixels}")


@dataclass(slots=True)
class DocInputSummary:
    """What the plan did with one input: ``records`` counted, ``shards`` allocated (empty and
    ``already`` true when it was ingested before)."""

    input: str
    format: str
    records: int = 0
    shards: list[str] = field(default_factory=list)
    already: bool = False

    def line(self) -> str:
        if self.already:
            return f"{self.input}: already ingested"
        return (f"{self.input}: {self.format}, {self.records} documents -> "
                f"{len(self.shards)} shard(s)")


def _fingerprint(url: str) -> str:
    from mm_assets.core.ingest.plan import _fingerprint as fp

    return fp(url)


def plan_doc_ingest(store: Store, fmt: str, inputs: list[str], image_root: str | None,
                    cfg: DocIngestConfig) -> list[DocInputSummary]:
    """Write the manifests of ``inputs`` (all in format ``fmt``); one summary per input.

    Raises:
        ValueError: ``fmt`` unknown, or ``image_root`` given for a format without image files.
        FileNotFoundError: an input or ``image_root`` does not exist.
        IngestLocked: another ingest held the root's lock for ``cfg.lock_wait_s`` s.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown interleaved format {fmt!r}; one of {', '.join(FORMATS)}")
    if image_root and fmt != "mmc4":
        raise ValueError(f"--images is for mmc4 (image_name files); {fmt} has none")
    if image_root:
        fs, path = fsspec.core.url_to_fs(image_root)
        if not fs.isdir(path):
            raise FileNotFoundError(f"image folder {image_root} does not exist")
    fps = [_fingerprint(u) for u in inputs]  # raises FileNotFoundError before any write
    with ingest_lock(store, wait_s=cfg.lock_wait_s):
        state = (store.read_json(layout.DOC_INGEST_STATE)
                 if store.exists(layout.DOC_INGEST_STATE)
                 else {"next_shard": 0, "ingested": {}, "slugs": {}})
        out = []
        for url, fp in zip(inputs, fps, strict=True):
            summary = DocInputSummary(url, fmt)
            out.append(summary)
            if fp in state["ingested"]:
                summary.already = True
                continue
            slug = _slug(state, url)
            with fsspec.open(url, "rb") as f:
                summary.records = count_records(fmt, f)
            for start in range(0, summary.records, cfg.shard_size):
                shard = f"{state['next_shard']:06d}"
                state["next_shard"] += 1
                store.write_json(layout.doc_manifest(shard), {
                    "format": fmt, "input": url, "source": slug, "start": start,
                    "stop": min(start + cfg.shard_size, summary.records),
                    "image_root": image_root})
                summary.shards.append(shard)
            state["ingested"][fp] = summary.shards
            store.write_json(layout.DOC_INGEST_STATE, state)
        return out


def _slug(state: dict, url: str) -> str:
    base = safe_id(url.rstrip("/").rsplit("/", 1)[-1].split(".")[0], 32) or "input"
    slug, n = base, 1
    while state["slugs"].get(slug, url) != url:
        n += 1
        slug = f"{base}_{n}"
    state["slugs"][slug] = url
    return slug


def validate_images(doc: Document, max_pixels: int, counts: Counter) -> Document:
    """``doc`` with each image with bytes checked (decoded once, extension sniffed, size set)
    and every image without bytes nor URL, or failing to decode, dropped with its reason in
    ``doc.meta["dropped_images"]``; ``counts`` gets ``images_in``, ``images_with_bytes``,
    ``images_url_only``, ``images_dropped`` and ``dropped_{reason}``."""
    kept, dropped = [], []
    for pos, seg in enumerate(doc.segments):
        if not isinstance(seg, ImageSeg):
            kept.append(seg)
            continue
        counts["images_in"] += 1
        reason = _check(seg, max_pixels)
        if reason is None:
            kept.append(seg)
            counts["images_url_only" if seg.data is None else "images_with_bytes"] += 1
        else:
            dropped.append({"pos": pos, "reason": reason, "url": seg.url})
            counts["images_dropped"] += 1
            counts[f"dropped_{reason}"] += 1
    if dropped:
        doc.meta = {**doc.meta, "dropped_images": dropped}
        doc.segments = kept
    return doc


def _check(seg: ImageSeg, max_pixels: int) -> str | None:
    if seg.data is None:
        return None if seg.url else "missing_image"
    try:
        seg.ext = sniff_ext(seg.data)
        im = decode(seg.data, max_pixels)
    except ImageError as e:
        return e.reason
    seg.width, seg.height = im.width, im.height
    return None


def ingest_records(manifest: dict, max_pixels: int, quarantine: list[Quarantined],
                   counts: Counter) -> Iterator[Document]:
    """Validated documents of one manifest's record range; bad records go to ``quarantine``,
    ``counts`` gets ``docs_in`` and the image counts of :func:`validate_images`."""
    with fsspec.open(manifest["input"], "rb") as f:
        for rec in iter_records(manifest["format"], f, manifest["source"],
                                manifest.get("image_root"), manifest["start"],
                                manifest["stop"]):
            counts["docs_in"] += 1
            doc = rec.doc
            if doc is not None:
                doc = validate_images(doc, max_pixels, counts)
                if not doc.segments:
                    rec.reason, rec.error = "empty_document", "every image dropped, no text"
                    doc = None
            if doc is None:
                quarantine.append(Quarantined(f"{manifest['source']}:{rec.index}", STAGE,
                                              rec.reason, rec.error, rec.location))
                continue
            yield doc


def build_doc_shard(store: Store, shard: str, max_pixels: int = DEFAULT_MAX_PIXELS
                    ) -> tuple[StageCounts, list[Quarantined], Counter]:
    """Write ``docs/{shard}.tar`` from its manifest.

    Returns:
        Document counts (``n_in = n_out + quarantined``), the quarantine rows and the image
        counts (see module docstring).

    Raises:
        FileNotFoundError: the manifest or its input is missing.
    """
    manifest = store.read_json(layout.doc_manifest(shard))
    quarantine: list[Quarantined] = []
    counts: Counter = Counter()
    with store.open_write(layout.doc_shard(shard)) as f:
        n_out = write_docs(f, ingest_records(manifest, max_pixels, quarantine, counts))
    docs = StageCounts(counts["docs_in"], n_out,
                       quarantined=Counter(q.reason for q in quarantine))
    return docs, quarantine, counts


def image_counts(counts: Counter) -> StageCounts:
    """The image accounting of :func:`build_doc_shard`'s counter as :class:`StageCounts`:
    in = ``images_in``, out = ``images_with_bytes + images_url_only``, quarantined = the
    ``dropped_{reason}`` counts (each counted where its image was decided)."""
    return StageCounts(counts["images_in"],
                       counts["images_with_bytes"] + counts["images_url_only"],
                       quarantined=Counter({k.removeprefix("dropped_"): n
                                            for k, n in counts.items()
                                            if k.startswith("dropped_") and n}))


def images_reconcile(counts: Counter) -> bool:
    """``images_in == images_with_bytes + images_url_only + images_dropped``."""
    return counts["images_in"] == (counts["images_with_bytes"] + counts["images_url_only"]
                                   + counts["images_dropped"])
