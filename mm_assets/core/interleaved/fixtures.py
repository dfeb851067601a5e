"""Small deterministic interleaved inputs in each published format (tests and bench).

:func:`make_docs` builds expected :class:`~.doc.Document` objects; the ``write_*`` functions
encode them exactly as each format's card describes (see :mod:`.readers`), so a test can read
a file back and compare with what was written. Nothing here is downloaded data.

- images: small PNGs of seeded noise (distinct pHashes), a fixed "logo" (a repeated image),
  and URL-only references (``https://img.example/...``, no bytes).
- every document ends with a text segment (mmc4 places an image before its matched sentence,
  so an image needs a sentence after it).
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np

from mm_assets.core.interleaved.doc import Document, ImageSeg, TextSeg

WORDS = ["the", "river", "valley", "holds", "small", "towns", "where", "people", "farm", "grain", "and", "raise", "sheep", "while", "a", "quiet", "road", "runs", "north", "past", "the", "old", "mill", "toward", "the", "hills", "and", "the", "sea"]


def noise_png(seed: int, size: int = 32) -> bytes:
    """A ``size`` × ``size`` RGB PNG of seeded blocky noise (8×8 blocks: a stable pHash)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    im = Image.fromarray(small).resize((size, size), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def logo_png(size: int = 40) -> bytes:
    """A fixed logo-like PNG (a ring on a diagonal gradient), identical bytes every call."""
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size]
    r = np.hypot(x - size / 2, y - size / 2)
    ring = ((r > size * 0.25) & (r < size * 0.4)) * 200
    arr = np.stack([ring, (x + y) * 255 // (2 * size), 255 - ring], -1).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _sentence(rng: np.random.Generator, n: int = 12) -> str:
    return " ".join(rng.choice(WORDS, n)).capitalize() + "."


def make_docs(n: int, seed: int = 0, logo_in: int = 0, url_only_every: int = 3,
              source: str = "fixture") -> list[Document]:
    """``n`` documents of 1-3 images between 2-4 sentences each.

    Args:
        n: documents.
        seed: RNG seed (texts, image choice).
        logo_in: the first ``logo_in`` documents also carry :func:`logo_png` as their first
            segment (a repeated logo).
        url_only_every: every k-th image (over the whole set) is a URL-only reference (0: none).
        source: ``Document.source``.
    """
    rng = np.random.default_rng(seed)
    docs, k = [], 0
    for d in range(n):
        segs: list = []
        if d < logo_in:
            segs.append(ImageSeg(data=logo_png(), url="https://img.example/logo.png",
                                 width=40, height=40, ext="png"))
        for _ in range(int(rng.integers(1, 4))):
            segs.append(TextSeg(_sentence(rng)))
            k += 1
            url = f"https://img.example/{seed}/{k}.png"
            if url_only_every and k % url_only_every == 0:
                segs.append(ImageSeg(url=url))
            else:
                segs.append(ImageSeg(data=noise_png(seed * 100003 + k), url=url, width=32,
                                     height=32, ext="png"))
        segs.append(TextSeg(_sentence(rng)))
        docs.append(Document(f"d{d:06d}", source, segs, {"url": f"https://doc.example/{d}"}))
    return docs


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 0
    tf.addfile(info, io.BytesIO(data))


def _tiff(frames: list[bytes]) -> bytes:
    from PIL import Image

    ims = [Image.open(io.BytesIO(b)).convert("RGB") for b in frames]
    buf = io.BytesIO()
    ims[0].save(buf, format="TIFF", save_all=True, append_images=ims[1:])
    return buf.getvalue()


def write_mint1t_wds(path: Path, docs: list[Document], tiff: bool = True,
                     extra: list[tuple[str, dict[str, bytes]]] = ()) -> Path:
    """A MINT-1T (PDF/ArXiv) style WebDataset tar of ``docs`` (images with bytes only; URL-only
    images are written as images without bytes, which MINT-1T never has: use docs without
    them to stay exact). ``tiff``: images in one multi-frame ``{key}.tiff`` (as the PDF
    shards), else one member ``{key}.{name}.png`` per image. ``extra``: raw samples
    ``(key, {ext: bytes})`` appended as is (bad records for tests)."""
    with tarfile.open(path, "w") as tf:
        for d in docs:
            texts, images, meta, frames = [], [], [], []
            for i, s in enumerate(d.segments):
                if isinstance(s, TextSeg):
                    texts.append(s.text)
                    images.append(None)
                    continue
                name = f"page_0_image_{i}"
                texts.append(None)
                images.append(name)
                meta.append({"width": s.width, "height": s.height, "page": 0, "xref": i})
                frames.append(s.data)
            body = {"texts": texts, "images": images, "image_metadata": meta,
                    "url": d.meta.get("url"), "pdf_name": f"{d.key}.pdf"}
            _tar_add(tf, f"{d.key}.json", json.dumps(body).encode())
            real = [b for b in frames if b is not None]
            if tiff and real:
                _tar_add(tf, f"{d.key}.tiff", _tiff(real))
            elif not tiff:
                for name, b in zip([n for n in images if n], frames):
                    if b is not None:
                        _tar_add(tf, f"{d.key}.{name}.png", b)
        for key, members in extra:
            for ext, data in members.items():
                _tar_add(tf, f"{key}.{ext}", data)
    return path


def parquet_table(docs: list[Document], flavour: str = "obelics"):
    """The pyarrow table of ``docs`` as OBELICS (``images``, ``metadata`` aligned with the
    positions, ``general_metadata``, ``texts``) or MINT-1T HTML (``url``, ``cc_dump``,
    ``texts``, ``images``, ``images_metadata`` and ``image_hashes`` in image order, one entry
    per image, ``metadata`` a string); images as their URLs. The MINT-1T entries' inner
    fields (``width`` / ``height`` in a JSON string, a hex hash) are our stand-ins: the card
    does not list them."""
    import hashlib

    import pyarrow as pa

    rows: dict[str, list] = {c: [] for c in ("images", "texts", "metadata", "general_metadata",
                                             "url", "images_metadata", "image_hashes",
                                             "html_metadata", "cc_dump")}
    for d in docs:
        texts, images, metas, per_image, hashes = [], [], [], [], []
        for s in d.segments:
            if isinstance(s, TextSeg):
                texts.append(s.text)
                images.append(None)
                metas.append(None)
            else:
                texts.append(None)
                images.append(s.url)
                metas.append({"src": s.url, "original_width": s.width,
                              "original_height": s.height})
                per_image.append(json.dumps({"width": s.width, "height": s.height}))
                hashes.append(hashlib.sha256((s.url or "").encode()).hexdigest())
        rows["images"].append(images)
        rows["texts"].append(texts)
        rows["metadata"].append(json.dumps(metas))
        rows["general_metadata"].append(json.dumps({"url": d.meta.get("url")}))
        rows["url"].append(d.meta.get("url"))
        rows["images_metadata"].append(per_image)
        rows["image_hashes"].append(hashes)
        rows["html_metadata"].append(json.dumps({"language": "en"}))
        rows["cc_dump"].append("CC-MAIN-2023-23")
    if flavour == "obelics":
        cols = {c: c for c in ("images", "metadata", "general_metadata", "texts")}
    else:
        cols = {"url": "url", "cc_dump": "cc_dump", "texts": "texts", "images": "images",
                "images_metadata": "images_metadata", "image_hashes": "image_hashes",
                "metadata": "html_metadata"}
    lists = ("images", "texts", "images_metadata", "image_hashes")
    return pa.table({c: pa.array(rows[src], type=pa.list_(pa.string()) if src in lists
                                 else pa.string()) for c, src in cols.items()})


def write_parquet(path: Path, docs: list[Document], flavour: str = "obelics",
                  row_group_size: int = 256) -> Path:
    """:func:`parquet_table` written to ``path``."""
    import pyarrow.parquet as pq

    pq.write_table(parquet_table(docs, flavour), path, row_group_size=row_group_size)
    return path


def mmc4_record(d: Document, image_dir: Path | None) -> dict:
    """``d`` as one mmc4 record; images with bytes are written to ``image_dir`` (when given)
    under ``image_name`` and matched to the next sentence."""
    text_list, image_info = [], []
    pending: list[ImageSeg] = []
    for s in d.segments:
        if isinstance(s, ImageSeg):
            pending.append(s)
            continue
        for im in pending:
            name = f"{d.key}_{len(image_info)}.png"
            if im.data is not None and image_dir is not None:
                (image_dir / name).write_bytes(im.data)
            image_info.append({"image_name": name, "raw_url": im.url,
                               "matched_text_index": len(text_list), "matched_sim": 0.3})
        pending = []
        text_list.append(s.text)
    return {"url": d.meta.get("url"), "text_list": text_list, "image_info": image_info,
            "similarity_matrix": [[0.3] * len(text_list)] * len(image_info),
            "could_have_url_duplicate": 0}


def write_mmc4(path: Path, docs: list[Document], image_dir: Path | None = None,
               extra_lines: list[str] = ()) -> Path:
    """mmc4 JSONL of ``docs`` (images to ``image_dir``) plus ``extra_lines`` as is."""
    if image_dir is not None:
        image_dir.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.writelines(json.dumps(mmc4_record(d, image_dir)) + "\n" for d in docs)
        f.writelines(line + "\n" for line in extra_lines)
    return path
