"""A synthetic MAmmoTH-VL-like corpus, seeded: 60% of records reuse another record's image,
10% are text-only, 3% have two images; the rest have an image of their own.

MAmmoTH-VL-Instruct has 12M samples, 7.6M of them with an image another sample also has, and
1.6M distinct images. Images here are tiny distinct PNGs (``image_px`` square, noise), so the
figures measure the pipeline's per-sample costs, not image decoding of real photos.

``records(n)`` yields :class:`~mm_assets.core.records.Sample` objects (keys ``m{i:08d}``) in
corpus order; ``write_llava(dir, n)`` writes LLaVA JSONL + an image folder for ``ingest``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from mm_assets.core.records import Sample

REUSE, TEXT_ONLY, MULTI = 0.60, 0.10, 0.03


def png(i: int, px: int = 16) -> bytes:
    """A distinct small PNG for image id ``i``."""
    rng = np.random.default_rng(i)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (px, px, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def plan(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per record: kind (0 own image, 1 reuse, 2 text-only, 3 two images) and image id(s).

    Returns:
        ``(kind (n,) int8, image (n, 2) int64)``; a reused image is drawn from the images of
        earlier records (-1: none).
    """
    rng = np.random.default_rng(seed)
    u = rng.random(n)
    kind = np.select([u < TEXT_ONLY, u < TEXT_ONLY + MULTI, u < TEXT_ONLY + MULTI + REUSE],
                     [2, 3, 1], 0).astype(np.int8)
    image = np.full((n, 2), -1, np.int64)
    nxt = 0
    for i in range(n):
        k = kind[i]
        if k == 0:
            image[i, 0], nxt = nxt, nxt + 1
        elif k == 3:
            image[i] = nxt, nxt + 1
            nxt += 2
        elif k == 1:
            image[i, 0] = rng.integers(0, nxt) if nxt else -1
            if nxt == 0:
                kind[i] = 2
    return kind, image


def _conv(i: int, rng: np.random.Generator, n_img: int) -> list[dict[str, str]]:
    q = f"Question {i}: what is {int(rng.integers(0, 100))} + {int(rng.integers(0, 100))}?"
    a = f"The answer is {int(rng.integers(0, 200))}. " + "Reasoning step. " * int(
        rng.integers(1, 6))
    return [{"from": "human", "value": "<image>" * n_img + ("\n" if n_img else "") + q},
            {"from": "gpt", "value": a}]


def records(n: int, seed: int = 0, image_px: int = 16) -> Iterator[Sample]:
    """The corpus as samples, in order (images cached by id, so memory ≈ distinct images)."""
    kind, image = plan(n, seed)
    rng = np.random.default_rng(seed + 1)
    cache: dict[int, bytes] = {}
    for i in range(n):
        ids = [int(x) for x in image[i] if x >= 0]
        ims = [cache.setdefault(j, png(j, image_px)) for j in ids]
        yield Sample(f"m{i:08d}", _conv(i, rng, len(ims)), ims, ["png"] * len(ims), "synth",
                     {"kind": int(kind[i])})


def write_llava(folder: str | Path, n: int, seed: int = 0, image_px: int = 16) -> Path:
    """``folder/data.jsonl`` (LLaVA records) and ``folder/images/{id}.png``; returns the JSONL."""
    folder = Path(folder)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    _, image = plan(n, seed)
    rng = np.random.default_rng(seed + 1)
    out = folder / "data.jsonl"
    with out.open("w") as f:
        for i in range(n):
            ids = [int(x) for x in image[i] if x >= 0]
            for j in ids:
                p = folder / "images" / f"{j}.png"
                if not p.exists():
                    p.write_bytes(png(j, image_px))
            rec = {"id": f"m{i:08d}", "conversations": _conv(i, rng, len(ids))}
            if ids:
                rec["image"] = [f"{j}.png" for j in ids] if len(ids) > 1 else f"{ids[0]}.png"
            f.write(json.dumps(rec) + "\n")
    return out
