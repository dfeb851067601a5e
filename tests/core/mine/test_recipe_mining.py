"""Mining recipes: validation names the field; per-cluster targets for each way of asking."""

from __future__ import annotations

import pytest

from mm_assets.core.mine.recipe import (
    MiningRecipeError,
    load_mining_recipe,
    parse_mining_recipe,
    shipped,
    targets,
)
from mm_assets.core.storage import Store

SIZES = {0: 10, 1: 40, 2: 100, 3: 0, 4: 25}  # median 25


def _r(extra: str):
    return parse_mining_recipe(f"name: r\npools: [p]\n{extra}")


def test_fill_to_median_brings_every_cluster_up_to_the_median():
    assert targets(_r("fill_to: median"), SIZES) == {0: 15, 1: 0, 2: 0, 3: 25, 4: 0}
    assert targets(_r("fill_to: 50\nclusters: [0, 2]"), SIZES) == {0: 40, 2: 0}
    even = {0: 1, 1: 2, 2: 4, 3: 8}  # median 3 (2 and 4 averaged)
    assert targets(_r("fill_to: median"), even) == {0: 2, 1: 1, 2: 0, 3: 0}


def test_counts_weights_and_distribution():
    assert targets(_r("counts: {0: 5, 3: 7}"), SIZES) == {0: 5, 1: 0, 2: 0, 3: 7, 4: 0}
    w = targets(_r("weights: {0: 1, 1: 2}\ntotal: 10"), SIZES)
    assert w == {0: 3, 1: 7, 2: 0, 3: 0, 4: 0} or w == {0: 4, 1: 6, 2: 0, 3: 0, 4: 0}
    assert sum(w.values()) == 10 and w[1] > w[0]
    # target: clusters 0 and 3 half each of corpus (175) + 25 mined = 100 each; 0 has 10,
    # 3 has 0 -> deficits 90 and 100 -> 25 split 12/13
    d = targets(_r("distribution: {0: 0.5, 3: 0.5}\ntotal: 25"), SIZES)
    assert sum(d.values()) == 25 and d[3] == 13 and d[0] == 12 and d[2] == 0
    assert targets(_r("distribution: {2: 1}\ntotal: 5"), SIZES)[2] == 5


@pytest.mark.parametrize("extra, field", [
    ("", "counts, fill_to, weights, distribution"),
    ("fill_to: median\ncounts: {0: 1}", "counts, fill_to"),
    ("fill_to: mean", "fill_to"),
    ("counts: {0: -1}", "counts"),
    ("counts: {a: 1}", "counts"),
    ("weights: {0: 1}", "total"),
    ("counts: {0: 1}\ntotal: 4", "total"),
    ("fill_to: median\nmin_sim: 2", "min_sim"),
    ("fill_to: median\nmin_margin: -0.1", "min_margin"),
    ("fill_to: median\ncaption: {min_chars: -1}", "caption.min_chars"),
    ("fill_to: median\ncaption: {max_chars: 0}", "caption.max_chars"),
    ("fill_to: median\ncaption: {languages: [English]}", "caption.languages"),
    ("fill_to: median\ncaption: {colour: red}", "caption"),
    ("fill_to: median\ndedup: {phash_radius: 64}", "dedup.phash_radius"),
    ("fill_to: median\ndedup: {cosine: 1.5}", "dedup.cosine"),
    ("fill_to: median\ndedup: {exact: 1}", "dedup.exact"),
    ("fill_to: median\ndedup: {cosine_clusters: 0}", "dedup.cosine_clusters"),
    ("fill_to: median\nseed: -1", "seed"),
    ("fill_to: median\nshard_size: 0", "shard_size"),
    ("fill_to: median\nclusters: some", "clusters"),
    ("fill_to: median\nprompt: ' '", "prompt"),
    ("fill_to: median\nsurprise: 1", "unknown field"),
])
def test_validation_errors_name_the_field(extra, field):
    with pytest.raises(MiningRecipeError, match=field.replace(".", r"\.")):
        _r(extra)


@pytest.mark.parametrize("shares, ok", [
    ("{0: 0.7, 3: 0.7}", False),  # the tryout's 1.4, accepted and normalised silently before
    ("{0: 0.5, 3: 0.4}", False),
    ("{0: 0.5, 3: 0.5000011}", False),
    ("{0: 0.5, 3: 0.5000009}", True),  # within 1e-6
    ("{0: 0.1, 1: 0.2, 3: 0.7}", True),  # 0.1 + 0.2 + 0.7 != 1.0 in floating point
])
def test_distribution_shares_must_sum_to_one(shares, ok):
    text = f"distribution: {shares}\ntotal: 10"
    if ok:
        assert _r(text).distribution
        return
    total = sum(float(v) for v in shares.strip("{}").split(", ") for v in [v.split(": ")[1]])
    with pytest.raises(MiningRecipeError, match=rf"distribution: target shares must sum to 1 "
                                                rf".*got {total:.6g}"):
        _r(text)


def test_unknown_clusters_and_pools_are_refused():
    with pytest.raises(MiningRecipeError, match=r"counts: unknown cluster id\(s\) \[9\]"):
        targets(_r("counts: {9: 1}"), SIZES)
    with pytest.raises(MiningRecipeError, match="clusters: unknown"):
        targets(_r("fill_to: median\nclusters: [7]"), SIZES)
    with pytest.raises(MiningRecipeError, match="pools"):
        parse_mining_recipe("name: r\npools: []\nfill_to: median\n")


def test_shipped_examples_parse_and_root_recipes_win(tmp_path):
    assert "diversity_v1" in shipped()
    store = Store(str(tmp_path))
    r = load_mining_recipe(store, "diversity_v1")
    assert r.mode == "fill_to" and r.dedup.cosine is not None
    store.write_bytes("mining/diversity_v1.yaml",
                      b"name: diversity_v1\npools: [mine]\ncounts: {0: 3}\n")
    assert load_mining_recipe(store, "diversity_v1").pools == ("mine",)
    store.write_bytes("mining/other.yaml", b"name: wrong\npools: [p]\nfill_to: median\n")
    with pytest.raises(MiningRecipeError, match="declares name 'wrong'"):
        load_mining_recipe(store, "other")
    with pytest.raises(MiningRecipeError, match="unknown mining recipe"):
        load_mining_recipe(store, "nope")
