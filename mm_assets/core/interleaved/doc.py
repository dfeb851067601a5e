"""The interleaved document model and its stored WebDataset form.

A :class:`Document` is an ordered list of segments, each a :class:`TextSeg` or an
:class:`ImageSeg`. An image segment holds its encoded bytes, or only the URL it was
published with (``data is None``, ``url`` set): such URL-only references are kept, carried
and counted (``Document.n_url_only``), never dropped silently.

Stored form (MINT-1T style, one WebDataset sample per document; the MINT-1T PDF/ArXiv shards
hold ``{key}.json`` with position-aligned ``texts``/``images`` lists where ``null`` marks the
other modality, as the OBELICS card describes for its ``texts``/``images`` columns)::

    {key}.json       {"format": "mm-assets/interleaved-v1", "key": ..., "source": ...,
                      "texts":  [str | null, ...],   # one entry per segment, in order
                      "images": [str | null, ...],   # member suffix "{pos}.{ext}" when the
                                                     # bytes are stored, else the URL
                      "urls":   [str | null, ...],   # the image's published URL, if any
                      "sizes":  [[w, h] | null, ...],# pixels, when known
                      "image_meta": [dict | null, ...],
                      "meta": {...}}
    {key}.{pos}.{ext}  the bytes of the image at segment position ``pos`` (jpg, png, ...)

Exactly one of ``texts[i]`` / ``images[i]`` is non-null at every position. Because a
WebDataset loader splits member names at the first dot, ``webdataset.WebDataset(url)``
yields ``{"__key__": key, "json": ..., "0.jpg": ..., "3.png": ...}`` and
:func:`from_wds` reads exactly that dict back. Keys must not contain ``.`` or ``/``.

Memory: a document holds its image bytes; nothing here decodes pixels.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

FORMAT = "mm-assets/interleaved-v1"
_KEY_OK = re.compile(r"^[A-Za-z0-9_\-:]+$")
_EXT_OK = re.compile(r"^[a-z0-9]{1,5}$")


class DocumentError(ValueError):
    """A document that violates the model (bad key, misaligned lists, missing member).

    Attributes:
        reason: short machine-readable reason used for quarantine rows.
    """

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class TextSeg:
    """A text segment. ``text``: the segment's text (str, may contain newlines)."""

    text: str


@dataclass(slots=True)
class ImageSeg:
    """An image segment: encoded bytes, or a URL-only reference.

    Attributes:
        data: encoded image bytes (JPEG/PNG/...), or ``None`` for a URL-only reference.
        url: the URL the image was published with (``None`` when unknown).
        width, height: size in pixels when known (from the source's metadata or a decode).
        meta: per-image metadata from the source (alt text, sha256, page, ...), JSON-safe.
        ext: file extension of ``data`` (``"jpg"``, ``"png"``, ...); ``"bin"`` when unknown.
    """

    data: bytes | None = None
    url: str | None = None
    width: int | None = None
    height: int | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    ext: str = "bin"

    @property
    def url_only(self) -> bool:
        """True when the image is a reference without bytes."""
        return self.data is None


Segment = TextSeg | ImageSeg


@dataclass(slots=True)
class Document:
    """One interleaved document.

    Attributes:
        key: unique, stable key (``[A-Za-z0-9_:-]``, no dots or slashes).
        source: the input it came from (format and file stem).
        segments: text and image segments in reading order.
        meta: document metadata (URL, source ids, general metadata), JSON-serialisable.
    """

    key: str
    source: str
    segments: list[Segment] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def texts(self) -> list[str]:
        """The text segments' texts, in order."""
        return [s.text for s in self.segments if isinstance(s, TextSeg)]

    @property
    def images(self) -> list[ImageSeg]:
        """The image segments, in order (URL-only ones included)."""
        return [s for s in self.segments if isinstance(s, ImageSeg)]

    @property
    def n_images(self) -> int:
        """Number of image segments (with bytes or URL-only)."""
        return sum(1 for s in self.segments if isinstance(s, ImageSeg))

    @property
    def n_url_only(self) -> int:
        """Number of image segments that are URL-only references."""
        return sum(1 for s in self.segments if isinstance(s, ImageSeg) and s.data is None)


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid WebDataset document key.

    Raises:
        DocumentError: ``bad_key`` when empty or containing characters other than
            ``[A-Za-z0-9_:-]`` (a dot would split the key in a WebDataset loader).
    """
    if not isinstance(key, str) or not _KEY_OK.match(key):
        raise DocumentError("bad_key", f"document key {key!r} must match [A-Za-z0-9_:-]+")
    return key


def to_wds(doc: Document) -> dict[str, bytes]:
    """The stored WebDataset members of ``doc``: ``{"{key}.json": ..., "{key}.{pos}.{ext}": ...}``.

    Member names are full names (key included), ready for a tar writer, in a fixed order
    (json first, then images by position), so the same document gives the same bytes.

    Raises:
        DocumentError: ``bad_key`` for an invalid key, ``bad_segment`` for a segment that is
            neither :class:`TextSeg` nor :class:`ImageSeg` or an invalid extension.
    """
    check_key(doc.key)
    n = len(doc.segments)
    texts: list[str | None] = [None] * n
    images: list[str | None] = [None] * n
    urls: list[str | None] = [None] * n
    sizes: list[list[int] | None] = [None] * n
    image_meta: list[dict | None] = [None] * n
    members: dict[str, bytes] = {}
    blobs: list[tuple[str, bytes]] = []
    for i, seg in enumerate(doc.segments):
        if isinstance(seg, TextSeg):
            texts[i] = seg.text
            continue
        if not isinstance(seg, ImageSeg):
            raise DocumentError("bad_segment", f"{doc.key}: segment {i} is {type(seg).__name__}")
        urls[i] = seg.url
        if seg.width is not None and seg.height is not None:
            sizes[i] = [int(seg.width), int(seg.height)]
        image_meta[i] = seg.meta or None
        if seg.data is None:
            images[i] = seg.url or ""
        else:
            if not _EXT_OK.match(seg.ext):
                raise DocumentError("bad_segment", f"{doc.key}: image {i} extension {seg.ext!r}")
            images[i] = f"{i}.{seg.ext}"
            blobs.append((f"{doc.key}.{i}.{seg.ext}", seg.data))
    body = {"format": FORMAT, "key": doc.key, "source": doc.source, "texts": texts,
            "images": images, "urls": urls, "sizes": sizes, "image_meta": image_meta,
            "meta": doc.meta}
    members[f"{doc.key}.json"] = json.dumps(body, ensure_ascii=False, sort_keys=True).encode()
    members.update(blobs)
    return members


def _json_of(sample: dict[str, Any]) -> dict[str, Any]:
    raw = sample.get("json")
    if raw is None:
        raise DocumentError("missing_json", f"{sample.get('__key__')}: no json member")
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise DocumentError("bad_json", f"{sample.get('__key__')}: {e}") from e
    if not isinstance(raw, dict):
        raise DocumentError("bad_json", f"{sample.get('__key__')}: json is {type(raw).__name__}")
    return raw


def _aligned(body: dict[str, Any], name: str, n: int) -> list:
    value = body.get(name)
    if value is None:
        return [None] * n
    if not isinstance(value, list) or len(value) != n:
        raise DocumentError("misaligned", f"{name!r} must be a list of {n} entries")
    return value


def from_wds(sample: dict[str, Any]) -> Document:
    """Read one stored document back from a WebDataset sample dict.

    Args:
        sample: ``{"__key__": key, "json": bytes | dict, "{pos}.{ext}": bytes, ...}`` as
            ``webdataset.WebDataset`` (no decoding) or ``tarfile`` grouping yields it.

    Returns:
        The :class:`Document` that :func:`to_wds` wrote (same segments, order, metadata).

    Raises:
        DocumentError: ``missing_json`` / ``bad_json``, ``misaligned`` (lists of different
            lengths, both or neither of text/image at a position), ``missing_member`` (an
            image named in ``images`` without its member).
    """
    body = _json_of(sample)
    texts, images = body.get("texts"), body.get("images")
    if not isinstance(texts, list) or not isinstance(images, list) or len(texts) != len(images):
        raise DocumentError("misaligned", "'texts' and 'images' must be lists of equal length")
    n = len(texts)
    urls, sizes, metas = (_aligned(body, k, n) for k in ("urls", "sizes", "image_meta"))
    segments: list[Segment] = []
    for i, (t, im) in enumerate(zip(texts, images)):
        if (t is None) == (im is None):
            raise DocumentError("misaligned", f"position {i}: exactly one of text/image required")
        if t is not None:
            segments.append(TextSeg(str(t)))
            continue
        size = sizes[i] or [None, None]
        seg = ImageSeg(url=urls[i], width=size[0], height=size[1], meta=metas[i] or {})
        if isinstance(im, str) and im == f"{i}.{im.rsplit('.', 1)[-1]}" and "." in im:
            data = sample.get(im)
            if data is None:
                raise DocumentError("missing_member", f"position {i}: member {im!r} missing")
            seg.data, seg.ext = bytes(data), im.rsplit(".", 1)[-1]
        segments.append(seg)
    key = body.get("key") or sample.get("__key__") or ""
    return Document(key=check_key(key), source=str(body.get("source", "")), segments=segments,
                    meta=body.get("meta") or {})
