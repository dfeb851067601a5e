"""Synthetic samples through the corpus checks (core, no Dagster): exact duplicates by pixels,
text-quality filters, perplexity, near-duplicate groups; every sample accounted for."""

from __future__ import annotations

import copy
import io

import polars as pl
import pytest
from PIL import Image

from mm_assets.core import layout, schemas
from mm_assets.core.dedup.exact import hash_samples
from mm_assets.core.dedup.near import near_duplicate_groups
from mm_assets.core.quality.ppl import PplConfig, build_scorer
from mm_assets.core.shards import read_samples, write_samples
from mm_assets.core.storage import Store
from mm_assets.core.synth.checked import SynthCheckConfig, check_spec
from mm_assets.core.synth.generate import build_spec
from mm_assets.core.synth.spec import SynthSpec

SPEC = SynthSpec(name="chk", generator="clocks", n=30, seed=5, size=96, shard_size=12)


def _read(store, paths):
    out = []
    for p in paths:
        with store.open_read(p) as f:
            out.extend(read_samples(f))
    return out


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """30 clocks in 3 shards, plus a 4th shard: a re-encoded copy of sample 3 (other bytes,
    same pixels), a sample whose answer leaks a template token, and an undecodable image."""
    store = Store(str(tmp_path_factory.mktemp("checked")))
    _, _, paths, _ = build_spec(store, SPEC)
    samples = _read(store, paths)
    twin = copy.deepcopy(samples[3])
    buf = io.BytesIO()
    Image.open(io.BytesIO(twin.images[0])).save(buf, "PNG", compress_level=9)
    twin.key, twin.images = "chk_zz_twin", [buf.getvalue()]
    leak = copy.deepcopy(samples[4])
    leak.key = "chk_zz_leak"
    leak.images = [_reencoded(samples[4].images[0], 1)]
    leak.conversations[1]["value"] += "<|im_end|>"
    broken = copy.deepcopy(samples[5])
    broken.key, broken.images = "chk_zz_broken", [b"\x89PNG not really"]
    extra = layout.numbered_tar(layout.synthetic_dir(SPEC.name), 99)
    with store.open_write(extra) as f:
        write_samples(f, [twin, leak, broken])
    return store, [*paths, extra], samples


def _reencoded(png: bytes, level: int) -> bytes:
    im = Image.open(io.BytesIO(png))
    im = im.rotate(180)  # new pixels: not a duplicate of anything
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=level)
    return buf.getvalue()


def test_duplicates_flags_and_bad_images_are_counted_with_reasons(rendered, shared):
    store, paths, samples = rendered
    arpa = shared / "text_ref" / "kenlm" / "lm" / "test.arpa"
    scorer = build_scorer(f"kenlm:{arpa}", "cpu", "auto", PplConfig())
    res = check_spec(store, SPEC, paths, scorer.score, SynthCheckConfig())
    c = res.counts
    assert (c.n_in, c.n_out) == (33, 30) and c.reconciles()
    assert dict(c.removed) == {"exact_duplicate": 1, "text_template_tokens": 1}
    assert dict(c.quarantined) == {"corrupt_image": 1}
    [q] = res.quarantine
    assert q.key == "chk_zz_broken" and q.location == paths[-1]
    d = {r["key"]: r for r in res.decisions.iter_rows(named=True)}
    assert d["chk_zz_twin"]["reason"] == "exact_duplicate"
    assert d["chk_zz_twin"]["duplicate_of"] == samples[3].key  # the smallest key is kept
    assert d[samples[3].key]["status"] == "kept"
    assert d["chk_zz_leak"]["reason"] == "text_template_tokens"
    assert "template_tokens" in d["chk_zz_leak"]["flags"]
    assert all(r["ppl"] is not None and r["ppl"] > 1 for r in d.values())
    kept = _read(store, [p for p in res.paths if p.endswith(".tar")])
    assert sorted(s.key for s in kept) == sorted(s.key for s in samples) == \
        sorted(k for k, r in d.items() if r["status"] == "kept")
    assert [len(x) for x in (kept[:12], kept[12:24], kept[24:])] == [12, 12, 6]
    stats = store.read_json(layout.synthetic_checked_stats(SPEC.name))
    assert stats["kept"]["n_out"] == 30 and stats["n_removed"] == 2
    assert sum(stats["kept"]["answer_distribution"].values()) == 30
    for name, schema in (("hashes", schemas.IMAGE_HASHES), ("ppl", schemas.PPL_SCORES),
                         ("text_quality", schemas.TEXT_QUALITY)):
        assert store.read_table(layout.synthetic_checked_table(SPEC.name, name),
                                schema).height >= 1


def test_near_duplicates_are_recorded_by_default_and_removed_on_request(rendered):
    store, paths, samples = rendered
    wide = SynthCheckConfig(near_threshold=24)  # clocks of one size: many pHash neighbours
    res = check_spec(store, SPEC, paths[:3], None, wide)
    groups = near_duplicate_groups(hash_samples(samples, 10**8), 24)
    assert groups.height > 2  # the premise: near groups exist among distinct clocks
    rec = res.decisions.filter(pl.col("near_group").is_not_null())
    assert sorted(rec["key"]) == sorted(groups["key"])
    assert res.counts.n_out == 30 and res.decisions["ppl"].null_count() == 30
    res = check_spec(store, SPEC, paths[:3], None,
                     SynthCheckConfig(near_threshold=24, near_action="remove"))
    followers = groups.filter(pl.col("key") != pl.col("near_group"))
    assert res.counts.removed == {"near_duplicate": followers.height}
    assert res.counts.n_out == 30 - followers.height and res.counts.reconciles()


def test_ppl_filter_and_config_validation(rendered, shared):
    store, paths, _ = rendered
    arpa = shared / "text_ref" / "kenlm" / "lm" / "test.arpa"
    scorer = build_scorer(f"kenlm:{arpa}", "cpu", "auto", PplConfig())
    base = check_spec(store, SPEC, paths[:3], scorer.score, SynthCheckConfig())
    lowest = float(base.decisions["ppl"].min())  # answers differ in length: several values
    res = check_spec(store, SPEC, paths[:3], scorer.score, SynthCheckConfig(max_ppl=lowest))
    above = int((base.decisions["ppl"] > lowest).sum())
    assert 0 < above < 30 and res.counts.removed == {"ppl_above_max": above}
    for bad, msg in (({"near_threshold": 64}, "near_threshold"),
                     ({"near_action": "drop"}, "near_action"),
                     ({"text_filters": ("nope",)}, "unknown text filter"),
                     ({"max_ppl": -1.0}, "max_ppl")):
        with pytest.raises(ValueError, match=msg):
            SynthCheckConfig(**bad)
