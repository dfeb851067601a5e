"""Building mixtures from several sources (asset + external WebDataset prefix), token totals,
decile weights, shard sizes in bytes, bounded-memory writes."""

import io
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from mm_assets.core.mix.build import collect, write_mixture
from mm_assets.core.mix.draw import Candidate, draw
from mm_assets.core.mix.recipe import RecipeError, parse_recipe, parse_size, split_counts
from mm_assets.core.records import Sample
from mm_assets.core.shards import read_samples, write_samples, write_shards
from mm_assets.core.storage import Store

SHARED = Path(__file__).resolve().parents[4] / "shared" / "data"


def _png(seed: int, size=(32, 24)) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _sample(i: int, text_only: bool, decile: int = 0) -> Sample:
    conv = [{"from": "human", "value": f"Question {i}?"},
            {"from": "gpt", "value": f"Answer {i} " + "word " * (i % 7)}]
    if text_only:
        return Sample(f"k{i:04d}", conv, source="gen", metadata={"ppl_decile": decile})
    conv[0]["value"] = "<image>\n" + conv[0]["value"]
    return Sample(f"k{i:04d}", conv, [_png(i)], ["png"], "gen", {"ppl_decile": decile})


def _count(text: str) -> int:
    return len(text.split())


@pytest.fixture
def root(tmp_path):
    """A root with 100 curated samples (1 in 4 text-only) and an external WebDataset folder:
    the 1000 gzip'd text documents of webdataset's testgz.tar plus a generated shard of 20
    captioned JPEGs, one of them corrupt."""
    store = Store(str(tmp_path / "root"))
    with store.open_write("curated/000000.tar") as f:
        write_samples(f, [_sample(i, i % 4 == 0, i % 10) for i in range(100)])
    ext = tmp_path / "ext"
    ext.mkdir()
    shutil.copy(SHARED / "wds/webdataset/testdata/testgz.tar", ext / "a-testgz.tar")
    with wds.TarWriter(str(ext / "b-captions.tar")) as w:
        for i in range(20):
            img = io.BytesIO()
            Image.fromarray(np.full((40, 60, 3), i * 10, np.uint8)).save(img, "JPEG")
            data = img.getvalue() if i != 7 else b"\xff\xd8 not a jpeg"
            w.write({"__key__": f"cap{i:03d}", "jpg": data, "txt": f"A grey square {i}."})
    return store, str(ext)


def test_two_sources_at_three_to_one_with_an_external_prefix(root):
    store, ext = root
    r = parse_recipe(f"name: r\nsources: [curated, {{name: web, wds: '{ext}'}}]\n"
                     f"ratio: {{curated: 3, web: 1}}\ntotal: 80\nseed: 5\nshard_size: 30\n")
    found = collect(store, r, {}, _count)
    # 100 curated + 1000 documents + 19 captions read; the corrupt JPEG quarantined with reason
    assert found.counts.quarantined == {"corrupt_image": 1}
    assert found.sources["web"]["samples"] == 1019 and found.sources["curated"]["samples"] == 100
    d = draw(list(found.cands.values()), r)
    assert d.per_stratum == {"curated": 60, "web": 20}
    paths = write_mixture(store, r, "mixtures/r", d, found)
    assert len(paths) == 3  # 30 + 30 + 20
    out = [s for p in paths for s in read_samples(store.open_read(p))]
    assert Counter(s.metadata["origin"] for s in out) == {"curated": 60, "web": 20}
    assert len({s.key for s in out}) == 80 and all(s.key.split("-")[0] in ("curated", "web")
                                                   for s in out)
    cand_of = dict(d.order)
    for s in out:  # every sample traces back to its source key in its source
        c = found.cands[cand_of[s.key]]
        assert s.metadata["source_key"] == c.source_key and s.key.endswith(c.source_key)
        assert s.metadata["source_asset"] == ("curated" if c.origin == "curated" else ext)
    # shuffled across sources: web samples are not all at the end
    origins = [s.metadata["origin"] for s in out]
    assert origins[:40].count("web") > 0 and origins[40:].count("curated") > 0
    counts = found.counts
    counts.n_out = 80
    counts.removed["not_sampled"] = len(found.cands) - 80
    assert counts.reconciles()


def test_source_modality_pairs_and_ratio_validation(root):
    store, ext = root
    r = parse_recipe(f"name: r\nsources: [curated, {{name: web, wds: '{ext}'}}]\n"
                     f"ratio: {{curated/multimodal: 3, web/text: 1}}\ntotal: 40\n")
    d = draw(list(collect(store, r, {}, _count).cands.values()), r)
    assert d.per_stratum == {"curated/multimodal": 30, "web/text": 10,  # pairs not in the
                             "curated/text": 0, "web/multimodal": 0}  # ratio get nothing
    assert d.per_modality == {"text": 10, "multimodal": 30}
    with pytest.raises(RecipeError, match="ratio: keys must all be"):
        parse_recipe("name: r\nsources: [curated, merged]\nratio: {curated: 1, text: 1}\n")
    with pytest.raises(RecipeError, match="ratio: keys must all be"):
        parse_recipe("name: r\nsources: [curated]\nratio: {web: 1}\n")
    with pytest.raises(RecipeError, match="sources: 'web' needs exactly one of asset or wds"):
        parse_recipe("name: r\nsources: [{name: web, asset: curated, wds: /x}]\n")
    with pytest.raises(RecipeError, match="sources: 'web': asset must be one of"):
        parse_recipe("name: r\nsources: [{name: web}]\n")
    with pytest.raises(RecipeError, match="source, sources"):
        parse_recipe("name: r\nsource: curated\nsources: [merged]\n")


def test_shortfall_between_sources_names_the_source(root):
    store, ext = root
    r = parse_recipe(f"name: r\nsources: [curated, {{name: web, wds: '{ext}'}}]\n"
                     f"ratio: {{curated: 1, web: 1}}\ntotal: 400\n")
    cands = list(collect(store, r, {}, _count).cands.values())
    with pytest.raises(RecipeError, match=r"curated: need 200, have 100 \(short by 100\)"):
        draw(cands, r)
    down = parse_recipe(f"name: r\nsources: [curated, {{name: web, wds: '{ext}'}}]\n"
                        f"ratio: {{curated: 1, web: 1}}\ntotal: 400\non_shortfall: downsample\n")
    assert draw(cands, down).per_stratum == {"curated": 100, "web": 100}


def _cands(n: int, tokens) -> list[Candidate]:
    return [Candidate(f"c{i:04d}", "s", "text", "text:0", i % 10, 0, tokens(i), "curated")
            for i in range(n)]


def test_total_in_tokens_is_the_smallest_draw_that_reaches_it():
    cands = _cands(300, lambda i: 10)
    d = draw(cands, parse_recipe("name: r\ntotal_tokens: 1005\n"))
    assert len(d.order) == 101 and d.tokens == 1010 and d.target_tokens == 1005
    varied = _cands(300, lambda i: 1 + (i * 37) % 50)
    r = parse_recipe("name: r\ntotal_tokens: 2000\nseed: 2\n")
    d = draw(varied, r)
    by_key = {c.key: c for c in varied}
    assert sum(by_key[k].text_tokens for _, k in d.order) == d.tokens >= 2000
    fewer = parse_recipe(f"name: r\ntotal: {len(d.order) - 1}\nseed: 2\n")
    assert draw(varied, fewer).tokens < 2000  # one sample fewer does not reach the target
    with pytest.raises(RecipeError, match=r"total_tokens: need 5,000 tokens.*short by 2,000"):
        draw(cands, parse_recipe("name: r\ntotal_tokens: 5000\n"))
    with pytest.raises(RecipeError, match="total, total_tokens"):
        parse_recipe("name: r\ntotal: 3\ntotal_tokens: 5\n")


def test_image_tokens_count_under_the_chosen_scheme():
    # one 1024x768 image + 10 text tokens: fixed 729, naflex_256 252 (18x14 patches)
    for scheme, per_image in (("fixed", 729), ("naflex_256", 252)):
        c = [Candidate(f"m{i}", "s", "multimodal", "image:0", 0, per_image, 10, "curated",
                       f"m{i}", ((1024, 768),)) for i in range(50)]
        r = parse_recipe(f"name: r\ntotal_tokens: {10 * (per_image + 10)}\n"
                         f"token_scheme: {scheme}\n")
        d = draw(c, r)
        assert len(d.order) == 10 and d.tokens == 10 * (per_image + 10)


def test_decile_weights_scale_and_exclude_deciles():
    cands = _cands(1000, lambda i: 5)  # 100 per decile
    r = parse_recipe("name: r\ntotal: 600\ndecile_weights: {0: 3.0, 9: 0}\nseed: 1\n")
    d = draw(cands, r)
    got = Counter(int(k[1:]) % 10 for _, k in d.order)
    want = split_counts(600, {dec: (3.0 if dec == 0 else 1.0) * 100 for dec in range(9)})
    assert got == {k: v for k, v in want.items() if v} and got[0] == 164 and 9 not in got
    with pytest.raises(RecipeError, match="decile_weights"):
        parse_recipe("name: r\ndecile_weights: {10: 1}\n")


def test_shard_size_in_bytes(tmp_path):
    assert parse_size(1000) == (1000, None)
    assert parse_size("64KB") == (None, 64_000) and parse_size("1GiB") == (None, 2**30)
    for bad in ("12 parsecs", 0, -3, "0MB", True):
        with pytest.raises(RecipeError, match="shard_size"):
            parse_size(bad)
    store = Store(str(tmp_path))
    samples = [_sample(i, False) for i in range(60)]
    paths = write_shards(store, "out", samples, None, 64_000)
    sizes = [os.path.getsize(store.path(p)) for p in paths]
    assert all(s <= 64_000 for s in sizes) and len(paths) > 1
    back = [s for p in paths for s in read_samples(store.open_read(p))]
    assert [s.key for s in back] == [s.key for s in samples]
    per_sample = sum(sizes) / 60
    assert all(s > 64_000 - 10_240 - 2 * per_sample for s in sizes[:-1])  # shards are full
    # a sample bigger than the limit gets a shard of its own rather than being dropped
    big = Sample("big", [{"from": "gpt", "value": "x"}], [_png(1, (400, 400))], ["png"])
    paths = write_shards(store, "out", [samples[0], big, samples[1]], None, 64_000)
    assert [len(list(read_samples(store.open_read(p)))) for p in paths] == [1, 1, 1]
    assert sorted(store.ls("out", ".tar")) == ["00000.tar", "00001.tar", "00002.tar"]


def test_a_source_that_changes_between_passes_fails_the_build(root):
    store, _ = root
    r = parse_recipe("name: r\nsource: curated\n")
    found = collect(store, r, {}, _count)
    d = draw(list(found.cands.values()), r)
    with store.open_write("curated/000000.tar") as f:
        write_samples(f, [_sample(i, i % 3 == 0) for i in range(100)])
    with pytest.raises(RuntimeError, match="source 'curated' changed"):
        write_mixture(store, r, "mixtures/r", d, found)
    assert not store.exists("mixtures/r/00000.tar")


def test_decile_range_and_min_answer_tokens_are_counted(root):
    store, _ = root
    r = parse_recipe("name: r\nsource: curated\ndeciles: [2, 4]\nmin_answer_tokens: 4\n")
    found = collect(store, r, {}, _count)
    assert found.counts.removed["outside_deciles"] == 70
    kept = [i for i in range(100) if 2 <= i % 10 <= 4]
    short = sum(1 for i in kept if 2 + i % 7 < 4)  # "Answer {i} word..." has 2 + i%7 words
    assert found.counts.removed["filtered_min_answer_tokens"] == short
    assert len(found.cands) == 30 - short


def test_exact_dedup_source_reconciles_and_empty_selections_fail(tmp_path):
    import polars as pl

    store = Store(str(tmp_path))
    with store.open_write("raw_shards/000000.tar") as f:
        write_samples(f, [_sample(i, i % 4 == 0, i % 10) for i in range(20)])
    store.write_parquet("exact_duplicates/groups.parquet", pl.DataFrame({
        "key": ["k0001", "k0002", "k0003"], "action": ["keep", "remove", "remove"]}))
    r = parse_recipe("name: r\nsource: exact_dedup\n")
    found = collect(store, r, {}, _count)
    assert found.counts.n_in == 20 and found.counts.removed["exact_duplicate"] == 2
    d = draw(list(found.cands.values()), r)
    found.counts.n_out = len(d.order)
    assert len(d.order) == 18 and found.counts.reconciles()
    none = parse_recipe("name: r\nsource: exact_dedup\ndecile_weights: "
                        "{0: 0, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 7: 0, 8: 0, 9: 0}\n")
    with pytest.raises(RecipeError, match="selects no samples: 18 eligible after filters"):
        draw(list(found.cands.values()), none)
    with pytest.raises(RecipeError, match="selects no samples: no source sample is eligible"):
        draw([], r)


def test_external_keys_and_quarantine_rows(root):
    store, ext = root
    r = parse_recipe(f"name: r\nsources: [curated, {{name: web, wds: '{ext}'}}]\n")
    found = collect(store, r, {}, _count)
    web = [c for c in found.cands.values() if c.origin == "web"]
    assert all(c.key.startswith("web-") and not c.key.startswith("web-web-") for c in web)
    assert all(c.key.startswith("curated-k") for c in found.cands.values() if c.origin == "curated")
    assert [(q.stage, q.reason) for q in found.quarantine] == [("mixtures", "corrupt_image")]


def test_recipe_file_errors_name_the_file(tmp_path):
    from mm_assets.core.mix.registry import load_recipe
    from mm_assets.partitions import parse_recipe_spec

    store = Store(str(tmp_path))
    store.write_bytes("recipes/broken.yaml", b"name: broken\nratio: {text: 1\n")
    with pytest.raises(RecipeError, match="broken.yaml: not valid YAML"):
        load_recipe(store, "broken")
    store.write_bytes("recipes/typo.yaml", b"name: typo\ntotl: 3\n")
    with pytest.raises(RecipeError, match=r"typo.yaml: unknown field\(s\) \['totl'\]"):
        load_recipe(store, "typo")
    known = ["ppl_deciles_0_2", "ppl_deciles_3_5", "curated_all"]
    assert parse_recipe_spec("ppl_*", known) == known[:2]
    assert parse_recipe_spec("all", known) == known
    with pytest.raises(ValueError, match="unknown recipe 'nope'"):
        parse_recipe_spec("curated_all,nope", known)
