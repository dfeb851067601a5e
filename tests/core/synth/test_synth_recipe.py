"""Recipes name synthetic specs as sources: ``{synthetic: SPEC}`` or ``{name: X, synthetic: SPEC}``."""

import pytest

from mm_assets.core.mix.recipe import RecipeError, parse_recipe


def test_synthetic_sources_parse():
    r = parse_recipe("name: m\nsources: [curated, {synthetic: clocks_v1}, "
                     "{name: count, synthetic: counting_v1}]\n"
                     "ratio: {curated: 8, clocks_v1: 1, count: 1}\n")
    by = {s.name: s for s in r.sources}
    assert by["clocks_v1"].synthetic == "clocks_v1" and by["clocks_v1"].asset is None
    assert by["count"].synthetic == "counting_v1" and by["count"].wds is None
    assert by["curated"].asset == "curated" and by["curated"].synthetic is None


@pytest.mark.parametrize("item, msg", [
    ("{synthetic: 'a b'}", "spec name"),
    ("{synthetic: x, wds: /tmp}", "no asset or wds"),
    ("{name: 'bad-name', synthetic: x}", "name must be"),
    ("{synth: x}", "keys name, asset, wds.* synthetic"),  # (+ interleaved, issue 16)
])
def test_bad_synthetic_sources(item, msg):
    with pytest.raises(RecipeError, match=msg):
        parse_recipe(f"name: m\nsources: [curated, {item}]\n")
