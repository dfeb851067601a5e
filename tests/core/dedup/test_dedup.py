import io

import polars as pl
import pytest
from PIL import Image

from mm_assets.core.dedup.exact import DedupConfig, exact_groups, group_size_histogram, hash_samples
from mm_assets.core.records import Sample


def _png(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, "PNG")
    return buf.getvalue()


def _s(key, text, images=()):
    return Sample(key, [{"from": "human", "value": text}, {"from": "gpt", "value": "ok"}],
                  list(images), ["png"] * len(images))


def test_text_only_samples_survive_and_never_group_through_empty_images():
    samples = [_s("t1", "one"), _s("t2", "two"), _s("t3", "three"), _s("i1", "img", [_png(1)])]
    groups = exact_groups(hash_samples(samples, 10**8), "keep_one")
    assert groups.height == 0


def test_identical_text_only_samples_are_duplicates_of_each_other():
    samples = [_s("t1", "Same text"), _s("t2", "same   TEXT"), _s("t3", "other")]
    groups = exact_groups(hash_samples(samples, 10**8), "merge")
    assert groups["key"].to_list() == ["t1", "t2"]
    assert groups.filter(pl.col("action") == "remove")["key"].to_list() == ["t2"]


@pytest.mark.parametrize("policy,actions", [("merge", ["merge"] * 3),
                                            ("keep_one", ["keep", "remove", "remove"]),
                                            ("keep_all", ["keep"] * 3)])
def test_policies_on_an_image_group(policy, actions):
    red = _png((255, 0, 0))
    samples = [_s("b", "q2", [red]), _s("a", "q1", [red]), _s("c", "q3", [red]),
               _s("d", "q", [_png((0, 0, 255))])]
    groups = exact_groups(hash_samples(samples, 10**8), policy)
    assert groups["key"].to_list() == ["a", "b", "c"]
    assert groups["action"].to_list() == actions
    assert groups["representative"].unique().to_list() == ["a"]
    hist = group_size_histogram(groups)
    assert hist.rows() == [("image", 3, 1)]


def test_bad_policy_fails_fast():
    with pytest.raises(ValueError, match="policy"):
        DedupConfig(policy="drop")
