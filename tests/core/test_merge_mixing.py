import pytest

from mm_assets.core.merge import MergeConfig, merge_group
from mm_assets.core.mixing import RecipeError, parse_recipe, plan_counts, split_counts
from mm_assets.core.records import Sample

IMG = [b"\x89PNG fake bytes are fine here"]


def _s(key, q, a, end=False):
    qv = f"{q}\n<image>" if end else f"<image>\n{q}"
    return Sample(key, [{"from": "human", "value": qv}, {"from": "gpt", "value": a}], IMG, ["png"])


def test_two_samples_on_one_image_merge_with_the_token_once():
    [m] = merge_group([_s("b", "What colour?", "Red."), _s("a", "How many?", "Two.")],
                      MergeConfig())
    text = "\n".join(t["value"] for t in m.conversations)
    assert text.count("<image>") == 1
    assert m.conversations[0]["value"].startswith("<image>")
    assert [t["value"] for t in m.conversations[1::2]] == ["Two.", "Red."]  # key order
    assert m.metadata["merged_from"] == ["a", "b"]


def test_identical_pairs_once_different_answers_kept_and_end_position_kept():
    [m] = merge_group([_s("a", "Q?", "A1", end=True), _s("b", "Q?", "A1"), _s("c", "Q?", "A2")],
                      MergeConfig())
    assert [t["value"] for t in m.conversations[1::2]] == ["A1", "A2"]
    assert m.conversations[0]["value"].endswith("<image>")


def test_cap_splits_into_parts_and_loses_nothing():
    members = [_s(f"k{i}", f"Q{i}?", f"A{i}") for i in range(5)]
    parts = merge_group(members, MergeConfig(max_turns=4))
    assert len(parts) == 3
    answers = [t["value"] for p in parts for t in p.conversations[1::2]]
    assert answers == [f"A{i}" for i in range(5)]
    assert all(p.conversations[0]["value"].count("<image>") == 1 for p in parts)
    assert len({p.key for p in parts}) == 3


def test_text_only_samples_are_never_merged():
    t = Sample("t", [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}])
    with pytest.raises(ValueError):
        merge_group([t, t], MergeConfig())


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
