"""A generated DataComp-style test pool with ground truth.

Writes WebDataset shards ``{out}/{i:08d}.tar`` of image + caption samples (members
``{wds_key}.jpg|png|webp``, ``{wds_key}.txt`` caption, ``{wds_key}.json`` metadata as
img2dataset writes: ``key``, ``caption``, ``width``, ``height``, ``kind``) and
``{out}/truth.parquet`` (:data:`TRUTH`), one row per sample. Images are drawn with Pillow and
numpy (a few ms each, so a 20k-image pool takes about a minute), of five kinds:

- ``shapes``: 1-6 filled polygons (:func:`mm_assets.core.synth.draw.polygon`) on a plain
  background;
- ``texture``: smooth random colour fields (bicubic-upsampled noise + gradient), photo-like;
- ``scene``: sky gradient, ground band, sun and trees, photo-like;
- ``document``: a page of lines of words (title, body, table rule);
- ``chart``: a bar chart with axes, values and a title;

plus copies of corpus images (read from the committed ``raw_shards`` of a root,
:func:`corpus_images`): ``copy_exact`` (the same bytes), ``copy_resized`` (LANCZOS to 50-80 %
and JPEG 85) and ``copy_flipped`` (horizontal mirror, JPEG 90), each with ``copy_of`` = the
corpus key; and optionally ``broken_image`` (truncated bytes) and ``no_caption`` samples,
whose ``expect`` is the quarantine reason ``pool_assign`` must give. Everything is seeded:
one seed gives the same bytes.
"""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass

import fsspec
import numpy as np
import polars as pl
import webdataset as wds
from PIL import Image, ImageDraw

from mm_assets.core.synth.draw import font, polygon, rgb_from_hsv

KINDS = ("shapes", "texture", "scene", "document", "chart")
TRUTH = {"shard": pl.Utf8, "wds_key": pl.Utf8, "kind": pl.Utf8, "copy_of": pl.Utf8,
         "how": pl.Utf8, "expect": pl.Utf8}
"""``truth.parquet``: per sample its shard stem, key, kind, the corpus key it copies and how
(``exact`` / ``resized`` / ``flipped``; null otherwise), and ``expect``: ``ok`` or the
quarantine reason."""
WORDS = ("river", "market", "engine", "garden", "signal", "harbor", "lantern", "meadow",
         "quartz", "violet", "summit", "canvas", "orbit", "timber", "copper", "delta", "ember",
         "falcon", "glacier", "island", "jungle", "kernel", "lagoon", "marble", "nectar")
SHAPES = ("square", "triangle", "hexagon", "star", "diamond")


@dataclass(frozen=True, slots=True)
class PoolGenConfig:
    """What to generate.

    Attributes:
        n: generated (non-copy, non-broken) images.
        shard_size: samples per shard.
        n_exact, n_resized, n_flipped: copies of corpus images of each kind (distinct
            originals, ≤ the corpus images given).
        n_broken: samples with truncated image bytes; n_no_caption: samples without caption.
        size: typical image side in pixels (each side drawn in 0.75-1.25 × size).
        seed: RNG seed.
    """

    n: int = 1000
    shard_size: int = 500
    n_exact: int = 0
    n_resized: int = 0
    n_flipped: int = 0
    n_broken: int = 0
    n_no_caption: int = 0
    size: int = 160
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.n, self.n_exact, self.n_resized, self.n_flipped, self.n_broken,
               self.n_no_caption) < 0 or self.shard_size < 1 or self.size < 32:
            raise ValueError(f"counts must be >= 0, shard_size >= 1, size >= 32: {self}")


def _words(rng, k: int) -> str:
    return " ".join(rng.choice(WORDS, k))


def _shapes(rng, w, h):
    im = Image.new("RGB", (w, h), tuple(rgb_from_hsv(rng, s_range=(0, .4), v_range=(.6, 1))))
    d = ImageDraw.Draw(im)
    names = []
    for _ in range(int(rng.integers(1, 7))):
        shape = str(rng.choice(SHAPES))
        names.append(shape)
        r = float(rng.uniform(0.08, 0.3)) * min(w, h)
        pts = polygon(shape, rng.uniform(r, w - r), rng.uniform(r, h - r), r, rng.uniform(0, 90))
        d.polygon(pts, fill=tuple(rgb_from_hsv(rng, s_range=(.5, 1), v_range=(.3, 1))))
    return im, f"{len(names)} shapes: {', '.join(names)} on a plain background"


def _texture(rng, w, h):
    g = rng.normal(0, 1, (int(rng.integers(3, 9)), int(rng.integers(3, 9)), 3))
    small = Image.fromarray(np.clip(128 + 60 * g, 0, 255).astype(np.uint8))
    base = np.asarray(small.resize((w, h), Image.Resampling.BICUBIC), np.float32)
    ramp = np.linspace(-30, 30, w)[None, :, None] * rng.uniform(-1, 1, 3)[None, None, :]
    pix = base + ramp + rng.normal(0, 6, (h, w, 3))
    return (Image.fromarray(np.clip(pix, 0, 255).astype(np.uint8)),
            f"a close-up photo of a {_words(rng, 1)} coloured {_words(rng, 1)} texture")


def _scene(rng, w, h):
    top, bottom = np.array(rgb_from_hsv(rng, (.5, .7), (.3, .8), (.6, 1)), np.float32), \
        np.array(rgb_from_hsv(rng, (.5, .7), (.1, .4), (.8, 1)), np.float32)
    t = np.linspace(0, 1, h)[:, None, None]
    pix = np.broadcast_to(top * (1 - t) + bottom * t, (h, w, 3)).astype(np.uint8)
    im = Image.fromarray(np.ascontiguousarray(pix))
    d = ImageDraw.Draw(im)
    horizon = int(h * rng.uniform(0.5, 0.8))
    d.rectangle([0, horizon, w, h], fill=tuple(rgb_from_hsv(rng, (.2, .4), (.4, .9), (.3, .7))))
    sx, sy, sr = rng.uniform(0, w), rng.uniform(0, horizon / 2), rng.uniform(6, 18)
    d.ellipse([sx - sr, sy - sr, sx + sr, sy + sr], fill=(255, 230, 120))
    trees = int(rng.integers(0, 6))
    for _ in range(trees):
        x, th = rng.uniform(0, w), rng.uniform(15, 45)
        d.rectangle([x - 2, horizon - th / 3, x + 2, horizon + 4], fill=(90, 60, 30))
        d.polygon([(x - th / 3, horizon - th / 3), (x + th / 3, horizon - th / 3),
                   (x, horizon - th)], fill=tuple(rgb_from_hsv(rng, (.25, .4), (.5, 1), (.2, .6))))
    return im, f"a landscape with {trees} trees under a {_words(rng, 1)} sky"


def _document(rng, w, h):
    im = Image.new("RGB", (w, h), (250, 250, 245))
    d = ImageDraw.Draw(im)
    title = _words(rng, 2).title()
    d.text((8, 6), title, fill=(20, 20, 60), font=font("sans_bold", max(10, h // 14)))
    y, px = 10 + h // 10, max(7, h // 22)
    while y < h - px:
        d.text((8, y), _words(rng, int(rng.integers(2, 6))), fill=(30, 30, 30),
               font=font("serif", px))
        y += px + 3
        if rng.random() < 0.15:
            d.line([8, y, w - 8, y], fill=(120, 120, 120))
            y += 3
    return im, f"a scanned page titled {title!r}"


def _chart(rng, w, h):
    im = Image.new("RGB", (w, h), (255, 255, 255))
    d = ImageDraw.Draw(im)
    n = int(rng.integers(3, 8))
    vals = rng.integers(1, 10, n)
    x0, y0, x1, y1 = max(6, w // 8), max(4, h // 8), w - 3, h - max(4, h // 10)
    d.line([x0, y0, x0, y1, x1, y1], fill=(0, 0, 0))
    bw = (x1 - x0) / n
    color = tuple(rgb_from_hsv(rng, s_range=(.5, 1), v_range=(.4, .9)))
    for i, v in enumerate(vals):
        top = y1 - (y1 - y0) * v / 10
        left = x0 + i * bw + 1
        d.rectangle([left, top, max(left, x0 + (i + 1) * bw - 1), y1], fill=color)
    topic = _words(rng, 2)
    d.text((x0, 2), topic, fill=(0, 0, 0), font=font("sans", 10))
    return im, f"a bar chart of {topic} with {n} bars, highest {int(vals.max())}"


DRAW = {"shapes": _shapes, "texture": _texture, "scene": _scene, "document": _document,
        "chart": _chart}


def encode_image(im: Image.Image, fmt: str, quality: int = 90) -> bytes:
    """``im`` encoded as ``fmt`` (JPEG / WEBP at ``quality``, PNG at compress level 3), no
    metadata: the same pixels give the same bytes."""
    buf = io.BytesIO()
    im.save(buf, fmt, **({"quality": quality} if fmt in ("JPEG", "WEBP") else
                         {"compress_level": 3}))
    return buf.getvalue()


def _copy(data: bytes, how: str, rng) -> tuple[bytes, str]:
    if how == "exact":
        fmt = (Image.open(io.BytesIO(data)).format or "PNG").upper()
        return data, {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}.get(fmt, "png")
    im = Image.open(io.BytesIO(data)).convert("RGB")
    if how == "resized":
        s = float(rng.uniform(0.5, 0.8))
        im = im.resize((max(16, round(im.width * s)), max(16, round(im.height * s))),
                       Image.Resampling.LANCZOS)
        return encode_image(im, "JPEG", 85), "jpg"
    return encode_image(im.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "JPEG", 90), "jpg"


def corpus_images(store, limit: int) -> list[tuple[str, bytes]]:
    """Up to ``limit`` ``(key, first image bytes)`` of committed ``raw_shards`` samples, one per
    distinct image (by bytes hash), in shard order. Memory: the images returned."""
    from mm_assets.core import layout
    from mm_assets.core.commits import committed
    from mm_assets.core.dedup.hashing import bytes_hash
    from mm_assets.core.shards import read_samples

    out, seen = [], set()
    for shard in committed(store, "raw_shards"):
        with store.open_read(layout.raw_shard(shard)) as f:
            for s in read_samples(f):
                if s.images and bytes_hash(s.images[0]) not in seen:
                    seen.add(bytes_hash(s.images[0]))
                    out.append((s.key, s.images[0]))
                    if len(out) >= limit:
                        return out
    return out


def _plan(cfg: PoolGenConfig, corpus: list[tuple[str, bytes]], rng) -> list[tuple]:
    """One ``(kind, how, corpus index)`` per sample, shuffled."""
    need = cfg.n_exact + cfg.n_resized + cfg.n_flipped
    if need > len(corpus):
        raise ValueError(f"{need} copies asked for, {len(corpus)} distinct corpus images given")
    picks = rng.permutation(len(corpus))[:need].tolist()
    plan = [(str(rng.choice(KINDS)), None, None) for _ in range(cfg.n)]
    for how, k in (("exact", cfg.n_exact), ("resized", cfg.n_resized),
                   ("flipped", cfg.n_flipped)):
        plan += [(f"copy_{how}", how, picks.pop()) for _ in range(k)]
    plan += [("broken_image", None, None)] * cfg.n_broken
    plan += [("no_caption", None, None)] * cfg.n_no_caption
    return [plan[i] for i in rng.permutation(len(plan))]


def _sample(kind: str, how, src, corpus, rng, size: int) -> tuple[bytes, str, str, int, int]:
    """``(image bytes, ext, caption, width, height)``."""
    if how is not None:
        data, ext = _copy(corpus[src][1], how, rng)
        caption = f"a picture ({_words(rng, 3)})"
    else:
        w, h = (int(size * rng.uniform(0.75, 1.25)) for _ in range(2))
        im, caption = DRAW[kind if kind in DRAW else "shapes"](rng, w, h)
        fmt = str(rng.choice(["JPEG", "JPEG", "PNG", "WEBP"]))
        fmt = "JPEG" if kind == "broken_image" else fmt  # truncated JPEG: truncated_image
        data = encode_image(im, fmt, int(rng.integers(80, 96)))
        ext = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[fmt]
    with Image.open(io.BytesIO(data)) as probe:
        w, h = probe.size
    if kind == "broken_image":
        data = data[: len(data) * 2 // 3]  # headers intact, scan data cut
    return data, ext, caption, w, h


def _write_sample(writer, stem: str, i: int, item: tuple, corpus, rng, size: int) -> dict:
    """Write sample ``i`` (``item`` from :func:`_plan`); returns its truth row."""
    kind, how, src = item
    data, ext, caption, w, h = _sample(kind, how, src, corpus, rng, size)
    key = f"{i:09d}"
    meta = {"key": key, "width": w, "height": h, "kind": kind}
    obj = {"__key__": key, ext: data}
    if kind != "no_caption":
        obj["txt"] = caption.encode()
        meta["caption"] = caption
    obj["json"] = json.dumps(meta, sort_keys=True).encode()
    writer.write(obj)
    expect = {"broken_image": "truncated_image", "no_caption": "missing_caption"}.get(kind, "ok")
    return {"shard": stem, "wds_key": key, "kind": kind,
            "copy_of": corpus[src][0] if how else None, "how": how, "expect": expect}


def generate_pool(out: str, cfg: PoolGenConfig,
                  corpus: list[tuple[str, bytes]] = ()) -> pl.DataFrame:
    """Write the pool shards and ``truth.parquet`` under ``out`` (folder or fsspec URL).

    Args:
        out: destination prefix (created).
        cfg: counts, shard size, image size, seed.
        corpus: ``(corpus key, image bytes)`` candidates for copies (:func:`corpus_images`).

    Returns:
        The truth table (:data:`TRUTH`).

    Raises:
        ValueError: more copies asked for than corpus images given.
    """
    rng = np.random.default_rng(cfg.seed)
    plan = _plan(cfg, list(corpus), rng)
    fs, base = fsspec.core.url_to_fs(out)
    fs.makedirs(base, exist_ok=True)
    rows = []
    for s0 in range(0, len(plan), cfg.shard_size):
        stem = f"{s0 // cfg.shard_size:08d}"
        with fs.open(f"{base}/{stem}.tar", "wb") as f, contextlib.closing(wds.TarWriter(
                f, mtime=0, user="pool", group="pool", encoder=False)) as writer:
            for i in range(s0, min(s0 + cfg.shard_size, len(plan))):
                rows.append(_write_sample(writer, stem, i, plan[i], corpus, rng, cfg.size))
    truth = pl.DataFrame(rows, schema=TRUTH)
    with fs.open(f"{base}/truth.parquet", "wb") as f:
        truth.write_parquet(f)
    return truth
