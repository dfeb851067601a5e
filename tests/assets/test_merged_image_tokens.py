"""merged checks the image-token rule of every sample it writes, as a blocking check."""

import polars as pl
from dagster import materialize

from mm_assets.assets.merged import merged
from mm_assets.core.commits import write_commit
from mm_assets.core.records import Sample, StageCounts
from mm_assets.core.shards import write_samples
from resources.storage import StorageResource


def _curated(root, samples):
    """A curated shard as an older raw shard could have produced it (no image-token rule)."""
    store = StorageResource(root=str(root)).store()
    with store.open_write("curated/000000.tar") as f:
        write_samples(f, samples)
    keys = [s.key for s in samples]
    store.write_parquet("curated/000000.decisions.parquet", pl.DataFrame(
        {"key": keys, "status": ["kept"] * len(keys), "reason": [None] * len(keys)},
        schema={"key": pl.Utf8, "status": pl.Utf8, "reason": pl.Utf8}))
    hashes = ["ab" * 16 if s.images else None for s in samples]
    store.write_parquet("image_hashes/000000.parquet", pl.DataFrame(
        {"key": keys, "list_hash": hashes, "pixel_list_hash": hashes},
        schema={"key": pl.Utf8, "list_hash": pl.Utf8, "pixel_list_hash": pl.Utf8}))
    for asset in ("image_hashes", "curated"):  # the shard is committed, as a real run leaves it
        write_commit(store, asset, "000000", StageCounts(len(keys), len(keys)))
    return StorageResource(root=str(root))


def _conv(q, a):
    return [{"from": "human", "value": q}, {"from": "gpt", "value": a}]


def _check(result):
    [ev] = [e for e in result.get_asset_check_evaluations() if e.check_name == "image_token_rule"]
    return ev


def test_a_merged_sample_with_an_answer_token_fails_the_blocking_check(tmp_path):
    img = [b"\x89PNG not decoded here"]
    storage = _curated(tmp_path, [
        Sample("a", _conv("<image>\nWhat colour?", "Red."), img, ["png"]),
        Sample("b", _conv("<image>\nHow many?", "Two, see <image>"), img, ["png"])])
    result = materialize([merged], resources={"storage": storage}, raise_on_error=False)
    ev = _check(result)
    assert not ev.passed and ev.metadata["violations"].value == 1
    assert "turn 3 (gpt)" in ev.metadata["examples"].value
    assert not result.success  # blocking: the step fails, downstream assets do not run


def test_clean_merged_samples_pass_the_check(tmp_path):
    img = [b"\x89PNG not decoded here"]
    storage = _curated(tmp_path, [
        Sample("a", _conv("<image>\nWhat colour?", "Red."), img, ["png"]),
        Sample("b", _conv("<image>\nHow many?", "Two."), img, ["png"]),
        Sample("t", _conv("Text only?", "Yes."))])
    result = materialize([merged], resources={"storage": storage}, raise_on_error=False)
    assert result.success and _check(result).passed
