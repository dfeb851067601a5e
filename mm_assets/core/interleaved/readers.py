"""Readers of the published interleaved formats -> :class:`~.doc.Document` or a quarantine row.

Formats (``--format``), as their dataset cards describe them:

- ``mint1t-wds``: MINT-1T PDF / ArXiv WebDataset shards. Per document ``{key}.json`` with
  position-aligned ``texts`` / ``images`` lists (``null`` where the other modality sits;
  ``images`` holds names such as ``page_0_image_85``), ``image_metadata`` (one dict per
  non-null image, in order: ``width``, ``height``, ``page``, ``sha256``, ``xref``) and
  document fields (``url``, ``pdf_name``, language ids, ...), plus the image bytes: one
  multi-frame ``{key}.tiff`` (frame *j* = the *j*-th non-null image), or one member per image
  named ``{key}.{image name}.{ext}`` (or ``{key}.{image name}`` when the name carries its
  extension, e.g. ``000.jpg``). Our own stored shards (``format`` =
  :data:`~.doc.FORMAT`) read back through :func:`~.doc.from_wds`.
- ``mint1t-parquet``: MINT-1T HTML Parquet (mlfoundations/MINT-1T-HTML, ``data_v1_1``):
  position-aligned ``texts`` / ``images`` lists as above with image URLs; per-image columns
  ``images_metadata`` and ``image_hashes`` listed in image order (one entry per non-null
  image, *not* per position); ``metadata`` (a string since the card's "cast-metadata-as-str"
  revision) and document columns (``url``, ``cc_dump``, ...). The card gives no field list;
  these names come from code that reads the published shards (see :func:`mint1t_html_doc`).
  Per-image entries are attached to their image only when the list has exactly one entry per
  image; otherwise the column is kept whole in the document's metadata (never zipped by
  position). Images are URL-only references. (Parquet rows: :mod:`.parquet`.)
- ``obelics``: OBELICS Parquet (HuggingFaceM4/OBELICS card): ``images`` / ``texts`` lists of
  equal length where exactly one element per index is non-null, images as URLs;
  ``metadata`` a JSON string of a list aligned with them; ``general_metadata`` a JSON string
  about the document.
- ``mmc4``: mmc4 JSONL (allenai/mmc4): ``text_list`` (sentences), ``image_info`` (list of
  ``{"image_name", "raw_url", "matched_text_index", "matched_sim", ...}``), ``url``, ... Each
  image is placed before the sentence it is matched to (``matched_text_index``), images of
  one sentence in ``image_info`` order, as OpenFlamingo interleaves mmc4. Bytes come from
  ``image_root/image_name`` when an image folder is given, else the image is URL-only.

Images a reader cannot find bytes or a URL for become ``ImageSeg(data=None, url=None)``;
ingest counts and drops them with a reason (:mod:`.ingest`), never silently.
Memory: one record (and its images) at a time; Parquet is read in record batches.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from mm_assets.core.ingest.formats import make_key
from mm_assets.core.interleaved.doc import (
    FORMAT,
    Document,
    DocumentError,
    ImageSeg,
    TextSeg,
    from_wds,
)

FORMATS = ("mint1t-wds", "mint1t-parquet", "obelics", "mmc4")
PARQUET_BATCH = 512  # rows per Parquet record batch


@dataclass(slots=True)
class Record:
    """One input record turned into a document, or why it could not be.

    Attributes:
        index: 0-based record index in the input (tar sample / row / line).
        doc: the document, or ``None`` when quarantined.
        reason, error: quarantine reason and message (``doc is None``).
        location: ``{input}:{index}`` (plus the tar key for WebDataset).
    """

    index: int
    doc: Document | None
    reason: str = ""
    error: str = ""
    location: str = ""


def _json_value(value: Any) -> Any:
    """A JSON string column parsed (OBELICS stores ``metadata`` as a string); else as is."""
    if isinstance(value, (bytes, str)):
        try:
            return json.loads(value)
        except (ValueError, TypeError):
            return value
    return value


def _size(meta: dict) -> tuple[int | None, int | None]:
    for w, h in (("original_width", "original_height"), ("width", "height")):
        if isinstance(meta.get(w), int) and isinstance(meta.get(h), int):
            return meta[w], meta[h]
    return None, None


def aligned_segments(texts: Any, images: Any, metas: Any, image_data=None) -> list:
    """Segments from position-aligned ``texts`` / ``images`` lists (MINT-1T, OBELICS).

    Args:
        texts, images: lists of equal length, exactly one non-null per position.
        metas: per-position metadata list (dict at image positions) or ``None``.
        image_data: ``callable(j, name) -> (bytes | None, ext)`` for the *j*-th image; ``None``:
            the ``images`` entries are URLs (URL-only references).

    Raises:
        DocumentError: ``misaligned`` (not lists, lengths differ, both or neither non-null).
    """
    if not isinstance(texts, list) or not isinstance(images, list) or len(texts) != len(images):
        raise DocumentError("misaligned", "'texts' and 'images' must be lists of equal length")
    if not isinstance(metas, list) or len(metas) != len(texts):
        metas = [None] * len(texts)
    segments: list = []
    j = 0
    for i, (t, im) in enumerate(zip(texts, images)):
        if (t is None) == (im is None):
            raise DocumentError("misaligned", f"position {i}: exactly one of text/image required")
        if t is not None:
            if not isinstance(t, str):
                raise DocumentError("bad_text", f"position {i}: text is {type(t).__name__}")
            segments.append(TextSeg(t))
            continue
        meta = metas[i] if isinstance(metas[i], dict) else {}
        w, h = _size(meta)
        if image_data is None:
            segments.append(ImageSeg(url=str(im), width=w, height=h, meta=meta))
        else:
            data, ext = image_data(j, str(im))
            segments.append(ImageSeg(data=data, width=w, height=h, meta=meta, ext=ext,
                                     url=meta.get("url") if isinstance(meta.get("url"), str)
                                     else None))
        j += 1
    return segments


def _tiff_frames(data: bytes) -> list[bytes]:
    """Each frame of a (multi-frame) TIFF re-encoded as PNG (lossless), in order."""
    from PIL import Image, ImageSequence

    out = []
    with Image.open(io.BytesIO(data)) as im:
        for frame in ImageSequence.Iterator(im):
            buf = io.BytesIO()
            frame.copy().save(buf, format="PNG", compress_level=1)  # lossless, fast
            out.append(buf.getvalue())
    return out


def mint1t_wds_doc(tar_key: str, parts: dict[str, bytes], slug: str, index: int) -> Document:
    """One MINT-1T WebDataset sample (``parts``: extension -> bytes) as a document.

    Raises:
        DocumentError: ``missing_json`` / ``bad_json``, ``misaligned``, ``bad_tiff``.
    """
    raw = parts.get("json")
    if raw is None:
        raise DocumentError("missing_json", f"sample {tar_key}: no json member")
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DocumentError("bad_json", f"sample {tar_key}: {e}") from e
    if not isinstance(body, dict):
        raise DocumentError("bad_json", f"sample {tar_key}: json is {type(body).__name__}")
    if body.get("format") == FORMAT:
        return from_wds({"__key__": tar_key, **parts})
    frames: list[bytes] | None = None
    if "tiff" in parts:
        try:
            frames = _tiff_frames(parts["tiff"])
        except Exception as e:  # Pillow raises many types for corrupt TIFFs
            raise DocumentError("bad_tiff", f"sample {tar_key}: {e}") from e

    def image_data(j: int, name: str) -> tuple[bytes | None, str]:
        if "." in name and name in parts:  # ``images`` names the member with its extension
            return parts[name], name.rsplit(".", 1)[1].lower()
        for ext, data in parts.items():
            if ext.startswith(name + ".") and ext.count(".") == name.count(".") + 1:
                return data, ext.rsplit(".", 1)[1]
        if frames is not None and j < len(frames):
            return frames[j], "png"
        return None, "bin"

    image_meta = body.get("image_metadata") or []
    texts, images = body.get("texts"), body.get("images")
    metas = None
    if isinstance(images, list) and isinstance(image_meta, list):
        it = iter(image_meta)
        metas = [None if im is None else next(it, None) for im in images]
    segments = aligned_segments(texts, images, metas, image_data)
    meta = {k: v for k, v in body.items() if k not in ("texts", "images", "image_metadata")}
    return Document(make_key(slug, index, tar_key.rsplit("/", 1)[-1]), slug, segments, meta)


def iter_mint1t_wds(f: IO[bytes], slug: str) -> Iterator[Record]:
    """Records of a MINT-1T WebDataset tar, one per sample key, in tar order.

    A truncated or corrupt archive ends the stream with one ``bad_tar`` record.
    """
    import tarfile

    from mm_assets.core.shards import iter_tar_groups

    index = -1
    try:
        for index, (key, parts) in enumerate(iter_tar_groups(f)):
            yield guard_record(index, f"{slug}:{index}:{key}",
                         lambda k=key, p=parts, i=index: mint1t_wds_doc(k, p, slug, i))
    except (tarfile.TarError, EOFError, OSError) as e:
        yield Record(index + 1, None, "bad_tar", str(e), f"{slug}:{index + 1}")


def guard_record(index: int, location: str, make) -> Record:
    """``make()``'s document as a record; its :class:`DocumentError`, or no segment at all
    (``empty_document``), as a quarantine record."""
    try:
        doc = make()
    except DocumentError as e:
        return Record(index, None, e.reason, str(e), location)
    if not doc.segments:
        return Record(index, None, "empty_document", "no text or image segment", location)
    return Record(index, doc, location=location)


def iter_records(fmt: str, f: IO[bytes], slug: str, image_root: str | None = None,
                 start: int = 0, stop: int | None = None) -> Iterator[Record]:
    """Records ``start .. stop-1`` of one input in format ``fmt`` (see module docstring).

    Raises:
        ValueError: ``fmt`` is not one of :data:`FORMATS`.
    """
    if fmt == "mint1t-wds":
        for rec in iter_mint1t_wds(f, slug):
            if stop is not None and rec.index >= stop:
                return
            if rec.index >= start:
                yield rec
    elif fmt in ("mint1t-parquet", "obelics"):
        from mm_assets.core.interleaved.parquet import iter_parquet, mint1t_html_doc, parquet_doc

        yield from iter_parquet(f, slug, start, stop,
                                mint1t_html_doc if fmt == "mint1t-parquet" else parquet_doc)
    elif fmt == "mmc4":
        from mm_assets.core.interleaved.mmc4 import iter_jsonl

        yield from iter_jsonl(f, slug, image_root, start, stop)
    else:
        raise ValueError(f"unknown interleaved format {fmt!r}; one of {FORMATS}")


def count_records(fmt: str, f: IO[bytes]) -> int:
    """Number of records of one input (Parquet: from its footer; JSONL: non-blank lines;
    WebDataset: sample keys, one pass over the tar headers and members)."""
    if fmt in ("mint1t-parquet", "obelics"):
        import pyarrow.parquet as pq

        return pq.ParquetFile(f).metadata.num_rows
    if fmt == "mmc4":
        return sum(1 for line in f if line.strip())
    if fmt == "mint1t-wds":
        import tarfile

        n, last = 0, None
        try:
            with tarfile.open(fileobj=f, mode="r|*") as tf:
                for m in tf:
                    if not m.isfile():
                        continue
                    folder, _, base = m.name.rpartition("/")
                    key = f"{folder}/{base.partition('.')[0]}"
                    if key != last:
                        n, last = n + 1, key
        except (tarfile.TarError, EOFError, OSError):
            n += 1  # the bad_tar record the reader yields
        return n
    raise ValueError(f"unknown interleaved format {fmt!r}; one of {FORMATS}")
