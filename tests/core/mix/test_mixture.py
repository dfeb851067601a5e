import io
from collections import Counter

import pytest
from PIL import Image

from mm_assets.core.mix.draw import Candidate, candidate, draw, summarise
from mm_assets.core.mix.recipe import RecipeError, parse_recipe
from mm_assets.core.records import Sample


def _cands(spec: dict[str, int], modality="text"):
    return [Candidate(f"{cl}-{i:03d}", "src", modality, cl, i % 10, 0, 5)
            for cl, n in spec.items() for i in range(n)]


def _png(w, h) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


def test_candidate_tokens_follow_the_recipe_scheme_for_a_1024x768_image():
    s = Sample("k", [{"from": "human", "value": "<image>\nhi"}], [_png(1024, 768)], ["png"])
    # fixed: 27x27 = 729; OneVision anyres_max_9: 2x3 tiles, unpadded 54x73 + 54 newlines +
    # 729 base = 4725; NaFlex 256: 18x14 patches of 16 px = 252 (tests/core/interleaved)
    for scheme, want in (("fixed", 729), ("anyres_max_9", 4725), ("naflex_256", 252)):
        c = candidate(s, "image:0", lambda t: 3, scheme=scheme)
        assert (c.image_tokens, c.text_tokens, c.image_sizes) == (want, 3, ((1024, 768),))
    two = Sample("k2", s.conversations, [_png(1024, 768), _png(1024, 768)], ["png", "png"])
    assert candidate(two, "none", len, scheme="anyres_max_9").image_tokens == 2 * 730
    with pytest.raises(ValueError, match="header"):
        candidate(Sample("b", s.conversations, [b"not an image"], ["png"]), "none", len)
    with pytest.raises(RecipeError, match="token_scheme.*'native' is retired.*naflex_1024"):
        parse_recipe("name: r\ntoken_scheme: native\n")
    with pytest.raises(RecipeError, match="unknown token scheme"):
        parse_recipe("name: r\ntoken_scheme: naflex\n")


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
