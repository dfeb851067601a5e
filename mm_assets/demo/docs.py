"""The demo's interleaved input: a small generated mmc4 file (issue 16), so ``mm-assets demo``
also carries documents through their assets (``interleaved_docs`` … ``docs_curated``).

``docs.jsonl`` holds :data:`N_DOCS` (11) documents ``[logo, image, text]``: the same logo
(:func:`mm_assets.core.interleaved.fixtures.logo_png`) opens every one of them (more than
``max_docs_per_image`` = 10 documents: the policy drops it), then a noise image of its own
(every 4th a URL-only reference), then one sentence (mmc4 places images before the sentence
they are matched to); plus an exact copy of document 3 (a
duplicate document) and a broken line (quarantined ``bad_json``). Images go to
``doc_images/`` (mmc4 ``image_name``). Deterministic; ~20 KB; one doc shard. One text segment
per document keeps the perplexity of the text segments (most of the time the documents add
to the demo) to 12 segments.
"""

from __future__ import annotations

from pathlib import Path

from mm_assets.core.interleaved import fixtures as fx
from mm_assets.core.interleaved.doc import Document, ImageSeg, TextSeg

N_DOCS, SEED = 11, 16
VERSION = 2
TOPICS = ("a river valley in spring", "the layout of a small kitchen", "a bar chart of rainfall",
          "an old bridge at night", "a map of the town centre", "a bicycle repair step")


def generate_docs(out_dir: Path) -> tuple[Path, Path]:
    """Write ``out_dir/docs.jsonl`` and ``out_dir/doc_images/`` (skipped when this
    :data:`VERSION` exists); returns (JSONL path, image folder)."""
    out_dir = Path(out_dir)
    path, images = out_dir / "docs.jsonl", out_dir / "doc_images"
    stamp = out_dir / "docs.version"
    if path.exists() and stamp.exists() and stamp.read_text() == str(VERSION):
        return path, images
    docs = [Document(f"d{i:06d}", "demo", [
        ImageSeg(data=fx.logo_png(), url="https://img.example/logo.png", width=40, height=40,
                 ext="png"),
        ImageSeg(url=f"https://img.example/demo/{i}.png") if i % 4 == 3 else
        ImageSeg(data=fx.noise_png(SEED * 1000 + i), url=f"https://img.example/demo/{i}.png",
                 width=32, height=32, ext="png"),
        TextSeg(f"Document {i}: {TOPICS[i % len(TOPICS)]}, as the picture above shows.")],
        {"url": f"https://doc.example/{i}"})
        for i in range(N_DOCS)]
    tmp = fx.write_mmc4(out_dir / "docs.tmp", docs, images)
    lines = tmp.read_text().splitlines()
    lines += [lines[3], '{"text_list": ["broken']  # a duplicate document, a broken line
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    stamp.write_text(str(VERSION))
    return path, images


def ingest_demo_docs(out_dir: Path, store, instance) -> list[str]:
    """Generate the demo documents under ``out_dir`` and ingest them into ``store`` (an input
    already ingested is skipped); registers the new doc shards in ``instance``. Returns the
    new doc shards."""
    from mm_assets.core.interleaved.ingest import DocIngestConfig, plan_doc_ingest

    path, images = generate_docs(out_dir)
    summaries = plan_doc_ingest(store, "mmc4", [str(path.resolve())], str(images.resolve()),
                                DocIngestConfig())
    new = [sh for s in summaries for sh in s.shards]
    have = set(instance.get_dynamic_partitions("doc_shards"))
    instance.add_dynamic_partitions("doc_shards", [s for s in new if s not in have])
    return new


def n_records() -> int:
    """Records in the demo's ``docs.jsonl``: documents + the duplicate + the broken line."""
    return N_DOCS + 2
