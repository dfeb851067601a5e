"""mmc4 JSONL reader (allenai/mmc4): ``text_list`` sentences and ``image_info`` images, each
image placed before the sentence it is matched to (``matched_text_index``), images of one
sentence in ``image_info`` order, as OpenFlamingo interleaves mmc4. Image bytes come from
``image_root/image_name`` when an image folder is given (paths may not escape it), else the
image is a URL-only reference (``raw_url``). See :mod:`.readers` for the other formats.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import IO, Any

from mm_assets.core.ingest.formats import make_key
from mm_assets.core.interleaved.doc import Document, DocumentError, ImageSeg, TextSeg
from mm_assets.core.interleaved.readers import Record, guard_record


def mmc4_doc(obj: Any, slug: str, index: int, image_root: str | None) -> Document:
    """One mmc4 JSONL document (images before their matched sentence).

    Raises:
        DocumentError: ``bad_record`` (not an object, no ``text_list`` list),
            ``bad_matched_text_index`` (an index that is not an int within ``text_list``).
    """
    if not isinstance(obj, dict) or not isinstance(obj.get("text_list"), list):
        raise DocumentError("bad_record", "mmc4 record needs a 'text_list' list")
    texts, infos = obj["text_list"], obj.get("image_info") or []
    if not isinstance(infos, list):
        raise DocumentError("bad_record", "'image_info' must be a list")
    before: dict[int, list[ImageSeg]] = {}
    for n, info in enumerate(infos):
        idx = info.get("matched_text_index") if isinstance(info, dict) else None
        if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < len(texts):
            raise DocumentError("bad_matched_text_index",
                                f"image_info[{n}].matched_text_index {idx!r} not in "
                                f"0..{len(texts) - 1}")
        before.setdefault(idx, []).append(_mmc4_image(info, image_root))
    segments: list = []
    for j, t in enumerate(texts):
        segments.extend(before.get(j, []))
        if not isinstance(t, str):
            raise DocumentError("bad_text", f"text_list[{j}] is {type(t).__name__}")
        segments.append(TextSeg(t))
    meta = {k: v for k, v in obj.items() if k not in ("text_list", "image_info",
                                                       "similarity_matrix")}
    return Document(make_key(slug, index, None), slug, segments, meta)


@functools.lru_cache(maxsize=8)
def _image_fs(image_root: str):
    """``(filesystem, base path)`` of an image folder, resolved once per folder."""
    import fsspec

    fs, base = fsspec.core.url_to_fs(image_root)
    return fs, base.rstrip("/")


def _mmc4_image(info: dict, image_root: str | None) -> ImageSeg:
    from mm_assets.core.ingest.plan import resolve_image

    meta = {k: v for k, v in info.items() if k not in ("raw_url",)}
    seg = ImageSeg(url=info.get("raw_url") if isinstance(info.get("raw_url"), str) else None,
                   meta=meta)
    name = info.get("image_name")
    if image_root and isinstance(name, str):
        url, reason = resolve_image(name, image_root)
        if reason:
            meta["image_error"] = reason
            return seg
        fs, base = _image_fs(image_root)
        try:
            seg.data = fs.cat_file(f"{base}/{url[len(image_root.rstrip('/')) + 1:]}")
            seg.ext = name.rsplit(".", 1)[-1].lower() if "." in name else "bin"
        except FileNotFoundError:
            meta["image_error"] = "missing_image_file"
    return seg


def iter_jsonl(f: IO[bytes], slug: str, image_root: str | None = None, start: int = 0,
               stop: int | None = None) -> Iterator[Record]:
    """Records ``start .. stop-1`` of an mmc4 JSONL file (blank lines are not records; lines
    before ``start`` are not parsed)."""
    i = -1
    for line in f:
        if not line.strip():
            continue
        i += 1
        if i < start:
            continue
        if stop is not None and i >= stop:
            return
        loc = f"{slug}:{i}"
        try:
            obj = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            yield Record(i, None, "bad_json", str(e), loc)
            continue
        yield guard_record(i, loc, lambda o=obj, i=i: mmc4_doc(o, slug, i, image_root))
