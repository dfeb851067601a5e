import pytest

from mm_assets.core.records import Sample
from mm_assets.core.text.merge import MergeConfig, merge_group

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
