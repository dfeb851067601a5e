import pytest

from mm_assets.core.mix.recipe import RecipeError, parse_recipe, plan_counts, split_counts


def test_ratio_one_to_three_over_400_is_exact():
    assert split_counts(400, {"text": 1, "multimodal": 3}) == {"text": 100, "multimodal": 300}
    assert sum(split_counts(401, {"text": 1, "multimodal": 3}).values()) == 401


def test_shortfall_fails_naming_it_or_downsamples():
    r = parse_recipe("name: r\ntotal: 400\nratio: {text: 1, multimodal: 3}\n")
    with pytest.raises(RecipeError, match=r"text: need 100, have 40 \(short by 60\)"):
        plan_counts(r, {"text": 40, "multimodal": 500})
    d = parse_recipe("name: r\ntotal: 400\nratio: {text: 1, multimodal: 3}\n"
                     "on_shortfall: downsample\n")
    assert plan_counts(d, {"text": 40, "multimodal": 500}) == {"text": 40, "multimodal": 120}


def test_recipe_errors_name_the_field():
    with pytest.raises(RecipeError, match="ratio"):
        parse_recipe("name: r\nratio: {audio: 1}\n")
    with pytest.raises(RecipeError, match="unknown field"):
        parse_recipe("name: r\nsize: 3\n")
    with pytest.raises(RecipeError, match="deciles"):
        parse_recipe("name: r\ndeciles: [5, 2]\n")
