"""Interleaved documents in token-budgeted mixtures: per-document cap (split / drop with
reasons), counts that reconcile, interleaved + conversation sources in one recipe, shards a
plain ``webdataset.WebDataset`` reads back, realised tokens within one document of the target
under fixed, AnyRes and NaFlex."""

import io
import json
import tarfile
from collections import Counter

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from mm_assets.core import layout
from mm_assets.core.commits import write_commit
from mm_assets.core.interleaved.budget import budget_units, split_document
from mm_assets.core.interleaved.doc import Document, ImageSeg, TextSeg, from_wds, to_wds
from mm_assets.core.interleaved.tokens import sample_image_tokens
from mm_assets.core.mix.build import collect, write_mixture
from mm_assets.core.mix.draw import draw
from mm_assets.core.mix.recipe import RecipeError, parse_recipe, split_counts
from mm_assets.core.records import Sample, StageCounts
from mm_assets.core.shards import write_samples
from mm_assets.core.storage import Store

SIZES = [(1024, 768), (384, 384), (640, 480), (200, 3000), (1920, 1080), (16, 16)]
_PNG: dict = {}


def png(w: int, h: int) -> bytes:
    if (w, h) not in _PNG:
        buf = io.BytesIO()
        Image.new("RGB", (w, h), (w % 255, h % 255, 90)).save(buf, "PNG")
        _PNG[w, h] = buf.getvalue()
    return _PNG[w, h]


def words(n: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


def count(text: str) -> int:
    return len(text.split())


def img(w, h, with_size=False) -> ImageSeg:
    return ImageSeg(png(w, h), None, w if with_size else None, h if with_size else None, {},
                    "png")


def make_docs(n: int, seed: int = 0) -> list[Document]:
    """``n`` documents of 2-7 segments (texts of 5-300 words, images of SIZES), one in five
    with a URL-only image, plus four special ones: only a URL-only image (empty once it is
    dropped), an unreadable image, one 3,000-word segment, a 12-image document."""
    rng = np.random.default_rng(seed)
    docs = []
    for i in range(n):
        segs = []
        for j in range(int(rng.integers(2, 8))):
            if rng.random() < 0.4:
                segs.append(img(*SIZES[int(rng.integers(len(SIZES)))], with_size=j % 2 == 0))
            else:
                segs.append(TextSeg(words(int(rng.integers(5, 300)), f"d{i}s{j}w")))
        if i % 5 == 0:
            segs.insert(1, ImageSeg(None, f"https://example.com/{i}.jpg"))
        docs.append(Document(f"doc-{i:04d}", "fixture", segs, {"url": f"https://e.com/{i}"}))
    docs.append(Document("only-url", "fixture", [ImageSeg(None, "https://e.com/x.jpg")]))
    docs.append(Document("bad-image", "fixture", [TextSeg("a b c"),
                                                  ImageSeg(b"garbage", None, None, None, {},
                                                           "png")]))
    docs.append(Document("huge-text", "fixture", [TextSeg(words(3000, "h"))]))
    docs.append(Document("many-images", "fixture",
                         [img(1024, 768), TextSeg(words(40, "m"))] * 12))
    return docs


def write_doc_shards(folder, docs, per_shard=25) -> None:
    """Stored interleaved form (doc.to_wds) written with tarfile, independent of the mixer;
    in a root's ``docs`` folder each shard also gets interleaved_docs' commit record (mixtures
    read committed doc shards only)."""
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(0, len(docs), per_shard):
        part = docs[k:k + per_shard]
        with tarfile.open(folder / f"{k // per_shard:05d}.tar", "w") as tf:
            for d in part:
                for name, data in to_wds(d).items():
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tf.addfile(info, io.BytesIO(data))
        if folder.name == layout.DOCS:
            write_commit(Store(str(folder.parent)), "interleaved_docs", f"{k // per_shard:05d}",
                         StageCounts(len(part), len(part)))


def conversations(n: int) -> list[Sample]:
    out = []
    for i in range(n):
        conv = [{"from": "human", "value": f"<image>\nWhat is {i}?"},
                {"from": "gpt", "value": words(3 + i % 20, "a")}]
        if i % 3 == 0:
            out.append(Sample(f"c{i:04d}", [{"from": "human", "value": f"Say {i}"},
                                            conv[1]], source="conv"))
        else:
            out.append(Sample(f"c{i:04d}", conv, [png(*SIZES[i % len(SIZES)])], ["png"],
                              "conv"))
    return out


def recipe(body: str):
    return parse_recipe("name: r\n" + body)


def test_split_keeps_order_and_each_part_within_the_cap():
    doc = Document("d", "s", [TextSeg(words(50, "a")), img(1024, 768), TextSeg(words(30, "b")),
                              img(384, 384), TextSeg(words(100, "c"))])
    # fixed: 50, 729, 30, 729, 100 -> [50+729+30 = 809] [729+100 = 829] under a cap of 900
    parts = split_document(doc, "fixed", count, 900)
    assert [(p.key, t + im) for p, t, im, _ in parts] == [("d-p0", 809), ("d-p1", 829)]
    assert [s for p, *_ in parts for s in p.segments] == doc.segments  # order kept
    assert parts[1][0].meta == {"doc_key": "d", "part": 1, "parts": 2}
    # naflex_256: 50, 252 (18x14), 30, 256 (16x16), 100 under 300:
    # [50] [252+30 = 282] [256] [100]
    parts = split_document(doc, "naflex_256", count, 300)
    assert [t + im for _, t, im, _ in parts] == [50, 282, 256, 100]
    # anyres_max_9 is not additive: one 1024x768 image alone tiles to 4725 tokens, two images
    # in one document use the multi-image rule (730 each): whole = 180 + 1460 = 1640
    assert split_document(doc, "anyres_max_9", count, 5000)[0][1:3] == (180, 1460)
    r = recipe("max_doc_tokens: 1000\ntoken_scheme: anyres_max_9\n")
    removed = Counter()
    # greedy: [50] then the lone 1024x768 image is 4725 > 1000: no boundary can fix it
    assert budget_units(doc, r, count, removed) == []
    assert removed == {"segment_over_max_doc_tokens": 1}


def test_cap_policies_url_only_and_bad_images_are_counted(tmp_path):
    docs = make_docs(40)
    write_doc_shards(tmp_path / "docs", docs)
    store = Store(str(tmp_path / "root"))
    src = f"sources: [{{name: web, interleaved: '{tmp_path / 'docs'}'}}]\n"
    url_only = sum(d.n_url_only for d in docs)
    for policy in ("split", "drop"):
        r = recipe(src + f"max_doc_tokens: 2000\ndoc_overflow: {policy}\n")
        found = collect(store, r, {}, count)
        facts = found.sources["web"]
        assert facts["documents"] == 44 and facts["url_only_images_dropped"] == url_only
        assert found.counts.quarantined == {"unreadable_image": 1}
        assert found.counts.removed["empty_document"] == 1
        whole = {c.source_key for c in found.cands.values() if "-p" not in c.source_key}
        split = {c.source_key.rsplit("-p", 1)[0] for c in found.cands.values()
                 if "-p" in c.source_key}
        if policy == "split":
            # huge-text is one 3,000-token segment: removed; the others over 2000 are split
            assert found.counts.removed["segment_over_max_doc_tokens"] == 1
            assert "many-images" in split and facts["split_documents"] == len(split) > 1
            assert len(whole | split) == 41  # 44 - empty - unreadable - huge-text
        else:
            # every document over 2000 (huge-text included) removed whole; 44 - empty - bad
            assert not split and found.counts.removed["over_max_doc_tokens"] == 44 - 2 - len(
                whole)
        assert all(c.tokens() <= 2000 and c.modality == "interleaved"
                   for c in found.cands.values())
        # the stage accounting, in units: in = out + removed + quarantined
        d = draw(list(found.cands.values()), r)
        found.counts.n_out = len({k for _, k in d.order})
        found.counts.removed["not_sampled"] = len(found.cands) - found.counts.n_out
        assert found.counts.reconciles()


def _tokens_of_written(sample: dict, scheme: str) -> tuple[int, str]:
    """Recount a written sample from its bytes: text tokens + image tokens of decoded sizes."""
    meta = json.loads(sample["json"])
    if "conversations" in meta:
        sizes = [Image.open(io.BytesIO(sample[n])).size for n in meta["images"]]
        text = "\n".join(t["value"] for t in meta["conversations"])
        return count(text) + sample_image_tokens(sizes, scheme), "conversation"
    doc = from_wds(sample)
    sizes = [Image.open(io.BytesIO(s.data)).size for s in doc.images]
    return sum(count(t) for t in doc.texts) + sample_image_tokens(sizes, scheme), "document"


@pytest.mark.parametrize("scheme", ["fixed", "anyres_max_9", "naflex_256"])
def test_token_budget_of_interleaved_and_conversations_lands_within_one_document(tmp_path,
                                                                                 scheme):
    write_doc_shards(tmp_path / "root" / "docs", make_docs(60, seed=1))
    store = Store(str(tmp_path / "root"))
    with store.open_write("curated/000000.tar") as f:
        write_samples(f, conversations(150))
    cap, target = 3000, 60_000
    r = recipe(f"sources: [curated, {{name: web, interleaved: docs}}]\n"
               f"ratio: {{curated: 3, web: 1}}\ntotal_tokens: {target}\n"
               f"token_scheme: {scheme}\nmax_doc_tokens: {cap}\nseed: 7\nshard_size: 40\n")
    found = collect(store, r, {}, count)
    d = draw(list(found.cands.values()), r)
    assert d.per_stratum == split_counts(len(d.order), {"curated": 3, "web": 1})  # samples
    # the smallest draw that reaches the target: over it by less than one document (<= cap)
    assert target <= d.tokens < target + cap
    fewer = recipe(f"sources: [curated, {{name: web, interleaved: docs}}]\n"
                   f"ratio: {{curated: 3, web: 1}}\ntotal: {len(d.order) - 1}\n"
                   f"token_scheme: {scheme}\nmax_doc_tokens: {cap}\nseed: 7\n")
    assert draw(list(collect(store, fewer, {}, count).cands.values()), fewer).tokens < target
    paths = write_mixture(store, r, "mixtures/r", d, found)
    # a standard loader reads the shards back: documents and conversations, in draw order
    got = list(wds.WebDataset([store.path(p) for p in paths], shardshuffle=False,
                              empty_check=False))
    assert [s["__key__"] for s in got] == [k for k, _ in d.order]
    recount = [_tokens_of_written(s, scheme) for s in got]
    assert sum(t for t, _ in recount) == d.tokens  # realised tokens, from the bytes written
    kinds = Counter(k for _, k in recount)
    assert kinds["document"] == d.per_stratum["web"] and kinds["conversation"] > 0
    for s in got:
        if b'"texts"' in s["json"]:
            doc = from_wds(s)
            assert doc.meta["origin"] == "web" and doc.meta["source_asset"] == "interleaved:docs"
            assert doc.n_url_only == 0
    manifest_tokens = {c.key: c.tokens() for c in found.cands.values()}
    assert max(manifest_tokens[k] for _, k in d.order if k.startswith("web-")) <= cap


@pytest.mark.parametrize("scheme", ["fixed", "anyres_max_9", "naflex_1024"])
def test_ratio_by_tokens_gives_each_source_its_token_share(tmp_path, scheme):
    write_doc_shards(tmp_path / "root" / "docs", make_docs(60, seed=3))
    store = Store(str(tmp_path / "root"))
    with store.open_write("curated/000000.tar") as f:
        write_samples(f, conversations(200))
    cap, target = 3000, 40_000
    r = recipe(f"sources: [curated, {{name: web, interleaved: docs}}]\n"
               f"ratio: {{curated: 1, web: 3}}\ntotal_tokens: {target}\nratio_by: tokens\n"
               f"token_scheme: {scheme}\nmax_doc_tokens: {cap}\nseed: 2\n")
    found = collect(store, r, {}, count)
    d = draw(list(found.cands.values()), r)
    by = Counter()
    for _, k in d.order:
        by[found.cands[k].origin] += found.cands[k].tokens()
    conv_max = max(c.tokens() for c in found.cands.values() if c.origin == "curated")
    # each source reaches its share (10,000 and 30,000) by less than one of its samples
    assert 10_000 <= by["curated"] < 10_000 + conv_max
    assert 30_000 <= by["web"] < 30_000 + cap
    assert d.tokens == by["curated"] + by["web"]
    short = recipe(f"sources: [curated, {{name: web, interleaved: docs}}]\n"
                   f"ratio: {{curated: 1, web: 3}}\ntotal_tokens: 10000000\n"
                   f"ratio_by: tokens\ntoken_scheme: {scheme}\nmax_doc_tokens: {cap}\n")
    with pytest.raises(RecipeError, match="ratio_by tokens.*curated: need 2,500,000 tokens"):
        draw(list(collect(store, short, {}, count).cands.values()), short)
    with pytest.raises(RecipeError, match="ratio_by: tokens needs a ratio and total_tokens"):
        recipe("ratio_by: tokens\ntotal: 10\n")


def test_interleaved_source_validation(tmp_path):
    with pytest.raises(RecipeError, match="interleaved must be docs"):
        recipe("sources: [{interleaved: nowhere}]\n")
    with pytest.raises(RecipeError, match="max_doc_tokens"):
        recipe("max_doc_tokens: 0\n")
    with pytest.raises(RecipeError, match="doc_overflow"):
        recipe("doc_overflow: truncate\n")
    # a cap under which no image fits is refused, not a mixture stripped of its images
    for scheme, least in (("fixed", 729), ("anyres_max_9", 730), ("naflex_256", 49),
                          ("naflex_64", 17)):
        src = f"sources: [{{interleaved: docs}}]\ntoken_scheme: {scheme}\n"
        with pytest.raises(RecipeError, match=f"below the smallest image cost under "
                                              f"{scheme} \\({least} tokens\\)"):
            recipe(src + f"max_doc_tokens: {least - 1}\n")
        assert recipe(src + f"max_doc_tokens: {least}\n").max_doc_tokens == least
    assert recipe("max_doc_tokens: 100\n").max_doc_tokens == 100  # no interleaved source
    r = recipe("sources: [{interleaved: docs_curated}]\n")
    assert r.sources[0].name == "docs_curated" and r.sources[0].interleaved == "docs_curated"
    with pytest.raises(FileNotFoundError, match="no interleaved .tar shards"):
        collect(Store(str(tmp_path)), r, {}, count)
