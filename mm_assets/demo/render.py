"""Image renderers of the demo input: photos, charts, document pages, and resized copies.

Every image is deterministic for a given index and generator state. Kinds differ the way they
do in real corpora: photos are natural pictures (scikit-image's bundled data); charts vary in
type (bar, horizontal bar, line, scatter, pie), colour, size and topic; documents vary in
layout (invoice, letter, table, receipt, form), page size, font sizes and text, so two distinct
pages differ in more than a few digits. A copy is the original resized with LANCZOS and
re-encoded as JPEG (the near-duplicates SemDeDup should remove).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PHOTOS = ["astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "horse",
          "clock", "hubble_deep_field", "immunohistochemistry", "brick", "grass", "gravel",
          "colorwheel", "retina"]
TOPICS = ["sales by region", "rainfall per month", "votes per party", "sensor readings",
          "downloads per week", "exam scores", "energy use", "tickets per team"]
WORDS = ["service", "delivery", "payment", "account", "order", "total", "invoice", "customer", "reference", "period", "balance", "contract", "project", "report", "summary", "shipping", "address", "amount", "date", "item", "tax", "quantity", "price", "review", "meeting", "schedule", "request", "approval", "office", "budget"]
DOC_KINDS = ["invoice", "letter", "table", "receipt", "form"]


def save(im: Image.Image, path: Path, fmt: str, **kw) -> None:
    """Encode ``im`` as ``fmt`` and write it (no metadata that varies between runs)."""
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    path.write_bytes(buf.getvalue())


def copy_of(src: Path, dst: Path, scale: float = 0.75, quality: int = 75) -> None:
    """A near-duplicate: ``src`` resized by ``scale`` (LANCZOS) and re-encoded as JPEG."""
    im = Image.open(src).convert("RGB")
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    save(im.resize(size, Image.Resampling.LANCZOS), dst, "JPEG", quality=quality)


def photo(img_dir: Path, name: str) -> str:
    """``photo_{name}.jpg``: scikit-image sample ``name``, at most 384 px, JPEG 90."""
    import skimage.data as sk

    im = Image.fromarray(getattr(sk, name)()).convert("RGB")
    im.thumbnail((384, 384))
    file = f"photo_{name}.jpg"
    save(im, img_dir / file, "JPEG", quality=90)
    return file


def chart(img_dir: Path, i: int, rng: np.random.Generator) -> dict:
    """``chart_{i:02d}.png``; returns its file, labels, values and top label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = int(rng.integers(3, 8))
    labels = [chr(65 + j) for j in range(n)]
    vals = [int(v) for v in rng.integers(5, 95, size=n)]
    colour = plt.get_cmap("tab10")(int(rng.integers(0, 10)))
    size = [(3.2, 2.4), (4.0, 3.0), (3.0, 3.0), (4.4, 2.6)][int(rng.integers(0, 4))]
    fig, ax = plt.subplots(figsize=size, dpi=80)
    kind = i % 5
    if kind == 0:
        ax.bar(labels, vals, color=colour)
    elif kind == 1:
        ax.barh(labels, vals, color=colour)
    elif kind == 2:
        ax.plot(labels, vals, marker="o", color=colour)
    elif kind == 3:
        ax.scatter(rng.uniform(0, 100, 30), rng.uniform(0, 100, 30), color=colour, s=12)
    else:
        ax.pie(vals, labels=labels)
    if kind in (0, 2) and rng.random() < 0.5:
        ax.grid(True, alpha=0.4)
    ax.set_title(f"Chart {i}: {TOPICS[int(rng.integers(0, len(TOPICS)))]}", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    file = f"chart_{i:02d}.png"
    (img_dir / file).write_bytes(buf.getvalue())
    return {"file": file, "labels": labels, "vals": vals, "top": labels[int(np.argmax(vals))]}


def _sentence(rng: np.random.Generator, n: int) -> str:
    return " ".join(WORDS[int(j)] for j in rng.integers(0, len(WORDS), n)).capitalize()


def document(img_dir: Path, i: int, rng: np.random.Generator) -> dict:
    """``doc_{i:02d}.png``: a page whose layout depends on ``i % 5`` (invoice, letter, table,
    receipt, form); returns its file, kind, number, total and item count."""
    kind = DOC_KINDS[i % len(DOC_KINDS)]
    w, h = [(360, 480), (420, 300), (300, 420), (480, 360)][int(rng.integers(0, 4))]
    im = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(im)
    big = ImageFont.load_default(size=int(rng.integers(16, 24)))
    small = ImageFont.load_default(size=int(rng.integers(10, 14)))
    total, items, number = int(rng.integers(100, 9999)), int(rng.integers(2, 9)), 1000 + i
    x, y = int(rng.integers(10, 40)), int(rng.integers(10, 40))
    if rng.random() < 0.5:  # a coloured header band
        d.rectangle([0, 0, w, y + 26], fill=tuple(int(c) for c in rng.integers(120, 230, 3)))
    d.text((x, y), f"{kind.upper()} No. {number}", fill="black", font=big)
    y += 40
    if kind in ("table", "invoice", "receipt"):
        cols = 3 if kind != "receipt" else 2
        cw = (w - 2 * x) // cols
        for r in range(items + 1):
            for c in range(cols):
                d.rectangle([x + c * cw, y, x + (c + 1) * cw, y + 18], outline="black")
                txt = WORDS[int(rng.integers(0, len(WORDS)))] if r == 0 or c == 0 else \
                    str(int(rng.integers(1, 999)))
                d.text((x + c * cw + 3, y + 3), txt, fill="black", font=small)
            y += 18
        y += 10
        d.text((x, y), f"Items: {items}   Total due: ${total}", fill="black", font=small)
        y += 22
    n_lines = int(rng.integers(3, 12)) if kind in ("letter", "form") else int(rng.integers(1, 4))
    for _ in range(n_lines):
        if y > h - 20:
            break
        if kind == "form":
            d.text((x, y), _sentence(rng, 2) + ":", fill="black", font=small)
            d.line([x + 120, y + 14, w - x, y + 14], fill="black")
        else:
            d.text((x, y), _sentence(rng, int(rng.integers(3, 8))), fill="black", font=small)
        y += int(rng.integers(16, 26))
    if kind == "letter":
        d.text((x, min(y + 10, h - 20)), f"Total due: ${total}", fill="black", font=small)
    file = f"doc_{i:02d}.png"
    save(im, img_dir / file, "PNG")
    return {"file": file, "kind": kind, "total": total, "items": items, "number": number}
