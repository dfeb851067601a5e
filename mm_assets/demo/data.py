"""The embedded default input: a deterministic LLaVA-format dataset generated on demand.

About 330 records exercising every stage: natural photos (scikit-image's bundled data),
rendered charts of several types with questions whose answers come from the plotted numbers,
rendered document pages of several layouts, images shared by several records with different
questions (exact duplicates), resized/re-encoded copies of photos, charts and documents
(near-duplicates), text-only records (two pairs identical), multi-image records, and four broken
records (bad JSON line, missing image, empty answer, path escaping the image root) that must be
quarantined, not dropped, and six text-only records with a formatting defect each.

Ground truth (``truth.json`` beside the JSONL, read with :func:`load_truth`): per record id its
``kind`` (``photo`` / ``chart`` / ``document`` for image records, ``multi`` for two-chart
records, ``text``, ``broken``), its image files, and ``copy_of``: the original file when the
record's image is a resized/re-encoded copy, else null; ``defect``: the text_quality flag a
text-only record was written to show (six records), else null. Tests compute cluster purity over
kinds, SemDeDup precision against the known copies and the text flags from it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl

from mm_assets.demo.render import PHOTOS, chart, copy_of, document, photo

VERSION = 3  # bump when the generated data changes: an older input folder is regenerated
PHOTO_QUESTIONS = ["What is shown in this image?", "Describe the image in one sentence.",
                   "Is this a photograph or a drawing?"]
TRUTH_SCHEMA = {"id": pl.Utf8, "kind": pl.Utf8, "images": pl.List(pl.Utf8), "copy_of": pl.Utf8,
                "defect": pl.Utf8}


TEXT_DEFECTS = [  # (text_quality flag, question, answer)
    ("template_tokens", "Say hello to the user.", "Hello! How can I help you today?<|im_end|>"),
    ("repetition", "Describe a quiet morning.",
     " ".join(["The kettle hums softly while the city is still asleep."] * 8)),
    ("answer_repeats_question", "What is the capital of France?",
     "What is the capital of France?"),
    ("mojibake", "Where did you have breakfast?", "We had breakfast at the cafÃ© near the park."),
    ("mc_no_option", "Which planet is closest to the Sun?\nA. Venus\nB. Mercury\nC. Mars",
     "It is Jupiter."),
    ("truncated", "Explain why leaves change colour in autumn.",
     "In autumn the days get shorter and trees stop making chlorophyll, so the green fades and "
     "the yellow and orange pigments that were hidden all summer become visible in the"),
]


def _conv(q: str, a: str, token_at_end: bool = False, n_images: int = 1) -> list[dict]:
    tok = "<image>" * n_images
    q = f"{q}\n{tok}" if token_at_end else f"{tok}\n{q}"
    return [{"from": "human", "value": q}, {"from": "gpt", "value": a}]


def load_truth(out_dir: Path) -> pl.DataFrame:
    """The generator's ground truth: one row per record id (schema ``TRUTH_SCHEMA``).

    Raises:
        FileNotFoundError: ``generate(out_dir)`` has not run.
    """
    rows = json.loads((Path(out_dir) / "truth.json").read_text())["records"]
    return pl.DataFrame(rows, schema=TRUTH_SCHEMA)


def generate(out_dir: Path, seed: int = 0) -> Path:
    """Write ``out_dir/demo.jsonl``, ``out_dir/images/`` and ``out_dir/truth.json``; returns
    the JSONL path.

    Deterministic for a given seed; skipped when the JSONL and a truth file of this
    ``VERSION`` already exist. Cost: ~2-4 s (matplotlib), ~3 MB of images.
    """
    out_dir = Path(out_dir)
    jsonl, truth_path = out_dir / "demo.jsonl", out_dir / "truth.json"
    if jsonl.exists() and truth_path.exists() and \
            json.loads(truth_path.read_text()).get("version") == VERSION:
        return jsonl
    img_dir = out_dir / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    recs, truth = _records(img_dir, np.random.default_rng(seed))
    recs.insert(len(recs) // 2, '{"id": "demo-broken", "conversations": [')  # bad JSON line
    truth.append({"id": "demo-broken", "kind": "broken", "images": [], "copy_of": None,
                  "defect": None})
    tmp = truth_path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"version": VERSION, "seed": seed, "records": truth}, indent=0))
    tmp.replace(truth_path)
    tmp = jsonl.with_suffix(".tmp")
    tmp.write_text("\n".join(recs) + "\n")
    tmp.replace(jsonl)
    return jsonl


def _records(img_dir: Path, rng: np.random.Generator) -> tuple[list[str], list[dict]]:
    recs: list[str] = []
    truth: list[dict] = []

    def add(kind: str, copy: str | None = None, defect: str | None = None, **r) -> None:
        rid = f"demo-{len(recs):04d}"
        recs.append(json.dumps({"id": rid, **r}, sort_keys=True))
        imgs = r.get("image", [])
        truth.append({"id": rid, "kind": kind, "copy_of": copy, "defect": defect,
                      "images": [imgs] if isinstance(imgs, str) else list(imgs)})

    def add_copy(kind: str, file: str, q: str, a: str) -> None:
        dst = file.rsplit(".", 1)[0] + "_copy.jpg"
        copy_of(img_dir / file, img_dir / dst)
        add(kind, copy=file, image=dst, conversations=_conv(q, a))

    for k, name in enumerate(PHOTOS):
        file = photo(img_dir, name)
        for j, q in enumerate(PHOTO_QUESTIONS[: 1 + k % 3]):  # shared image, different questions
            add("photo", image=file, conversations=_conv(
                q, f"The image is the scikit-image sample picture called '{name}'.", j == 2))
        if k % 2 == 0:  # near-duplicate: resized, re-encoded copy
            add_copy("photo", file, "What is shown in this image?", f"A copy of '{name}'.")
    charts = [chart(img_dir, i, rng) for i in range(40)]
    for i, c in enumerate(charts):
        add("chart", image=c["file"], conversations=_conv(
            "Which category has the highest value?", f"Category {c['top']} is highest."))
        add("chart", image=c["file"], conversations=_conv(
            "What is the value of the first category?", f"It is {c['vals'][0]}.", True))
        if len(c["labels"]) > 3:
            add("chart", image=c["file"], conversations=_conv(
                "How many categories are plotted?", f"There are {len(c['labels'])}."))
        if i % 5 == 1:
            add_copy("chart", c["file"], "Which category has the highest value?",
                     f"Category {c['top']} is highest.")
    docs = [document(img_dir, i, rng) for i in range(30)]
    for i, d in enumerate(docs):
        add("document", image=d["file"], conversations=_conv(
            "What kind of document is this?", f"It is a {d['kind']}, number {d['number']}."))
        if d["kind"] != "form":
            add("document", image=d["file"], conversations=_conv(
                "What is the total due?", f"The total due is ${d['total']}."))
        if d["kind"] in ("invoice", "table", "receipt"):
            add("document", image=d["file"], conversations=_conv(
                "How many items are listed?", f"{d['items']} items are listed."))
        if i % 5 == 2:
            add_copy("document", d["file"], "What kind of document is this?",
                     f"It is a {d['kind']}, number {d['number']}.")
    for i in range(10):
        a, b = charts[2 * i], charts[2 * i + 1]
        add("multi", image=[a["file"], b["file"]], conversations=_conv(
            "Compare the first values of the two charts.",
            f"The first chart starts at {a['vals'][0]}, the second at {b['vals'][0]}.",
            n_images=2))
    _text_and_broken(add, rng, docs[0]["file"])
    return recs, truth


def _text_and_broken(add, rng: np.random.Generator, doc_file: str) -> None:
    for _ in range(60):
        x, y = int(rng.integers(2, 99)), int(rng.integers(2, 99))
        add("text", conversations=[{"from": "human", "value": f"What is {x} plus {y}?"},
                                   {"from": "gpt", "value": f"{x} plus {y} equals {x + y}."}])
    for i in range(2):  # identical text-only records
        for _ in range(2):
            add("text", conversations=[{"from": "human", "value": "Name the largest planet."},
                                       {"from": "gpt", "value": "Jupiter is the largest planet."}]
                if i == 0 else [{"from": "human", "value": "What colour is the sky?"},
                                {"from": "gpt", "value": "On a clear day the sky is blue."}])
    add("broken", image="does_not_exist.jpg", conversations=_conv("What is this?", "Unknown."))
    add("broken", image="../outside_root.png", conversations=_conv("What is this?", "Unknown."))
    add("broken", image=doc_file, conversations=_conv("Summarise the invoice.", "   "))
    for flag, q, a in TEXT_DEFECTS:  # formatting defects of generated text (text_quality)
        add("text", defect=flag, conversations=[{"from": "human", "value": q},
                                                {"from": "gpt", "value": a}])
