from collections import Counter

import pytest

from mm_assets.core.mix.draw import Candidate, draw, image_tokens, summarise
from mm_assets.core.mix.recipe import RecipeError, parse_recipe


def _cands(spec: dict[str, int], modality="text"):
    return [Candidate(f"{cl}-{i:03d}", "src", modality, cl, i % 10, 0, 0, 5)
            for cl, n in spec.items() for i in range(n)]


def test_token_estimates_for_a_1024x768_image():
    # fixed tiling: one 384-px tile of 27x27 patches = 729; native: ceil(1024/14)*ceil(768/14)
    assert image_tokens(1024, 768) == (729, 74 * 55)
    assert image_tokens(100_000, 100_000)[1] == 16_384  # capped


def test_one_to_three_over_400_is_exact_and_seeded():
    cands = _cands({"text:0": 150}) + _cands({"image:0": 500}, "multimodal")
    r = parse_recipe("name: r\ntotal: 400\nratio: {text: 1, multimodal: 3}\nseed: 3\n")
    a, b = draw(cands, r), draw(cands, r)
    assert a.per_modality == {"text": 100, "multimodal": 300}
    assert Counter(k.split("-")[0].split(":")[0] for k, _ in a.order) == {"text": 100,
                                                                          "image": 300}
    assert a.order == b.order
    c = draw(cands, parse_recipe("name: r\ntotal: 400\nratio: {text: 1, multimodal: 3}\n"
                                 "seed: 4\n"))
    assert c.order != a.order and sorted(c.per_modality.items()) == sorted(a.per_modality.items())


def test_cluster_weights_scale_per_cluster_counts():
    cands = _cands({"text:0": 100, "text:1": 100, "text:2": 100})
    r = parse_recipe("name: r\ntotal: 150\ncluster_weights: {'text:0': 2.0, 'text:1': 0.5}\n")
    d = draw(cands, r)
    # 150 split in proportion to weight x size = 200 : 50 : 100 (largest remainder)
    assert d.per_cluster == {"text:0": 86, "text:1": 21, "text:2": 43}
    assert Counter(src.split("-")[0] for _, src in d.order) == {"text:0": 86, "text:1": 21,
                                                                "text:2": 43}
    assert not d.with_replacement and len({k for k, _ in d.order}) == 150


def test_upsampling_beyond_a_cluster_draws_with_replacement_and_keeps_keys_unique():
    cands = _cands({"text:0": 10, "text:1": 90})
    r = parse_recipe("name: r\ntotal: 100\ncluster_weights: {'text:0': 3.0}\n")
    d = draw(cands, r)
    assert d.per_cluster["text:0"] == 25 and d.with_replacement
    keys = [k for k, _ in d.order]
    assert len(set(keys)) == 100 and any("-r" in k for k in keys)
    summary = summarise({c.key: c for c in cands}, d)
    assert summary["by_cluster"] == {"text:0": 25, "text:1": 75}
    assert summary["tokens"]["text"] == 500


def test_cluster_weight_keys_are_validated():
    with pytest.raises(RecipeError, match="cluster_weights"):
        parse_recipe("name: r\ncluster_weights: {3: 2.0}\n")


def test_min_answer_tokens_is_validated():
    assert parse_recipe("name: r\nmin_answer_tokens: 5\n").min_answer_tokens == 5
    with pytest.raises(RecipeError, match="min_answer_tokens"):
        parse_recipe("name: r\nmin_answer_tokens: -1\n")


@pytest.mark.parametrize("shortfall", ["fail", "downsample"])
def test_an_empty_draw_fails_whatever_on_shortfall_says(shortfall):
    cands = _cands({"text:0": 40})  # a text-only corpus
    r = parse_recipe(f"name: r\nratio: {{text: 1, multimodal: 1}}\non_shortfall: {shortfall}\n")
    with pytest.raises(RecipeError, match="selects no samples"):
        draw(cands, r)
