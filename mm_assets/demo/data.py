"""The embedded default input: a deterministic LLaVA-format dataset generated on demand.

About 300 records exercising every stage: natural photos (scikit-image's bundled data),
rendered bar/line charts with questions whose answers come from the plotted numbers, rendered
document images, images shared by several records with different questions (exact duplicates),
resized/re-encoded copies (near-duplicates), text-only records (two pairs identical),
multi-image records, and four broken records (bad JSON line, missing image, empty answer, path
escaping the image root) that must be quarantined, not dropped.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PHOTOS = ["astronaut", "camera", "coffee", "chelsea", "rocket", "coins", "moon", "horse",
          "clock", "hubble_deep_field", "immunohistochemistry", "brick", "grass", "gravel",
          "colorwheel", "retina"]
PHOTO_QUESTIONS = ["What is shown in this image?", "Describe the image in one sentence.",
                   "Is this a photograph or a drawing?"]


def _save(im: Image.Image, path: Path, fmt: str, **kw) -> None:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    path.write_bytes(buf.getvalue())


def _photos(img_dir: Path) -> list[str]:
    import skimage.data as sk

    names = []
    for name in PHOTOS:
        arr = getattr(sk, name)()
        im = Image.fromarray(arr).convert("RGB")
        im.thumbnail((384, 384))
        _save(im, img_dir / f"photo_{name}.jpg", "JPEG", quality=90)
        names.append(name)
    return names


def _chart(img_dir: Path, i: int, rng: np.random.Generator) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = ["A", "B", "C", "D", "E"][: 3 + i % 3]
    vals = [int(v) for v in rng.integers(5, 95, size=len(labels))]
    fig, ax = plt.subplots(figsize=(3.2, 2.4), dpi=80)
    (ax.bar if i % 2 == 0 else ax.plot)(labels, vals)
    ax.set_title(f"Chart {i}: sales by region")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    name = f"chart_{i:02d}.png"
    (img_dir / name).write_bytes(buf.getvalue())
    top = labels[int(np.argmax(vals))]
    return {"file": name, "labels": labels, "vals": vals, "top": top}


def _document(img_dir: Path, i: int, rng: np.random.Generator) -> dict:
    total = int(rng.integers(100, 9999))
    items = int(rng.integers(2, 9))
    im = Image.new("RGB", (360, 220), "white")
    draw = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=16)
    lines = [f"INVOICE No. {1000 + i}", f"Items: {items}", f"Total due: ${total}",
             "Payable within 30 days."]
    for j, line in enumerate(lines):
        draw.text((16, 16 + 40 * j), line, fill="black", font=font)
    name = f"doc_{i:02d}.png"
    _save(im, img_dir / name, "PNG")
    return {"file": name, "total": total, "items": items, "number": 1000 + i}


def _conv(q: str, a: str, token_at_end: bool = False, n_images: int = 1) -> list[dict]:
    tok = "<image>" * n_images
    q = f"{q}\n{tok}" if token_at_end else f"{tok}\n{q}"
    return [{"from": "human", "value": q}, {"from": "gpt", "value": a}]


def generate(out_dir: Path, seed: int = 0) -> Path:
    """Write ``out_dir/demo.jsonl`` and ``out_dir/images/``; returns the JSONL path.

    Deterministic for a given seed; skipped when the JSONL already exists.
    """
    out_dir = Path(out_dir)
    jsonl = out_dir / "demo.jsonl"
    if jsonl.exists():
        return jsonl
    img_dir = out_dir / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    recs: list[str] = []

    def add(**r) -> None:
        recs.append(json.dumps({"id": f"demo-{len(recs):04d}", **r}, sort_keys=True))

    photos = _photos(img_dir)
    for k, name in enumerate(photos):
        for j, q in enumerate(PHOTO_QUESTIONS[: 1 + k % 3]):  # shared image, different questions
            add(image=f"photo_{name}.jpg", conversations=_conv(
                q, f"The image is the scikit-image sample picture called '{name}'.", j == 2))
        if k % 2 == 0:  # near-duplicate: smaller, re-encoded copy
            im = Image.open(img_dir / f"photo_{name}.jpg")
            im.thumbnail((200, 200))
            _save(im, img_dir / f"photo_{name}_small.jpg", "JPEG", quality=70)
            add(image=f"photo_{name}_small.jpg",
                conversations=_conv("What is shown in this image?", f"A copy of '{name}'."))
    charts = [_chart(img_dir, i, rng) for i in range(40)]
    for c in charts:
        add(image=c["file"], conversations=_conv(
            "Which category has the highest value?", f"Category {c['top']} is highest."))
        add(image=c["file"], conversations=_conv(
            "What is the value of the first category?", f"It is {c['vals'][0]}.", True))
        if len(c["labels"]) > 3:
            add(image=c["file"], conversations=_conv(
                "How many categories are plotted?", f"There are {len(c['labels'])}."))
    docs = [_document(img_dir, i, rng) for i in range(30)]
    for d in docs:
        add(image=d["file"], conversations=_conv("What is the total due on this invoice?",
                                                 f"The total due is ${d['total']}."))
        add(image=d["file"], conversations=_conv("How many items are listed?",
                                                 f"{d['items']} items are listed."))
    for i in range(10):
        a, b = charts[2 * i], charts[2 * i + 1]
        add(image=[a["file"], b["file"]], conversations=_conv(
            "Compare the first values of the two charts.",
            f"The first chart starts at {a['vals'][0]}, the second at {b['vals'][0]}.",
            n_images=2))
    for i in range(60):
        x, y = int(rng.integers(2, 99)), int(rng.integers(2, 99))
        add(conversations=[{"from": "human", "value": f"What is {x} plus {y}?"},
                           {"from": "gpt", "value": f"{x} plus {y} equals {x + y}."}])
    for i in range(2):  # identical text-only records
        for _ in range(2):
            add(conversations=[{"from": "human", "value": "Name the largest planet."},
                               {"from": "gpt", "value": "Jupiter is the largest planet."}]
                if i == 0 else [{"from": "human", "value": "What colour is the sky?"},
                                {"from": "gpt", "value": "On a clear day the sky is blue."}])
    add(image="does_not_exist.jpg", conversations=_conv("What is this?", "Unknown."))
    add(image="../outside_root.png", conversations=_conv("What is this?", "Unknown."))
    add(image=docs[0]["file"], conversations=_conv("Summarise the invoice.", "   "))
    recs.insert(len(recs) // 2, '{"id": "demo-broken", "conversations": [')  # bad JSON line
    tmp = jsonl.with_suffix(".tmp")
    tmp.write_text("\n".join(recs) + "\n")
    tmp.replace(jsonl)
    return jsonl
