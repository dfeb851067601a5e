"""text_quality flags a shard for real and curated removes the selected flags with reasons.

raw_shards, image_hashes, exact_duplicates and text_quality are materialized for real on a
small input written here; SemDeDup and the perplexity deciles (model stages, covered by the
session graph) are given as their tables with no duplicate and no decile, so curated's only
removals are the text-quality ones.
"""

import json

import polars as pl
from dagster import AssetKey, instance_for_test, materialize
from PIL import Image

from mm_assets.core.commits import write_commit
from mm_assets.core.ingest.plan import IngestConfig, plan_ingest
from mm_assets.core.records import StageCounts
from mm_assets.definitions import ALL_ASSETS, default_resources
from resources.storage import StorageResource

MCQ = "Which animal?\nA. cat\nB. dog\nC. horse"
RECORDS = [
    {"id": "clean", "image": "a.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat colour is the square?"},
        {"from": "gpt", "value": "It is red."}]},
    {"id": "clean_text", "conversations": [
        {"from": "human", "value": "Name a prime number."}, {"from": "gpt", "value": "7."}]},
    {"id": "leak", "conversations": [
        {"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "Hi!<|im_end|>"}]},
    {"id": "loop", "conversations": [
        {"from": "human", "value": "Describe it."},
        {"from": "gpt", "value": " ".join(["The cat is sitting on the mat."] * 12)}]},
    {"id": "echo", "conversations": [
        {"from": "human", "value": "How many people are in the photo?"},
        {"from": "gpt", "value": "How many people are in the photo?"}]},
    {"id": "mc", "conversations": [
        {"from": "human", "value": MCQ}, {"from": "gpt", "value": "A giraffe."}]},
]


def _graph(tmp_path, curated_config=None):
    Image.new("RGB", (32, 32), (200, 10, 10)).save(tmp_path / "a.png")
    src = tmp_path / "in.json"
    src.write_text(json.dumps(RECORDS))
    storage = StorageResource(root=str(tmp_path / "root"))
    store = storage.store()
    [shard] = plan_ingest(store, [str(src)], None, IngestConfig())
    resources = {**default_resources(), "storage": storage}
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", [shard])
        for sel in (["raw_shards", "image_hashes", "text_quality"], ["exact_duplicates"]):
            kw = {"partition_key": shard} if sel[0] == "raw_shards" else {}
            assert materialize(ALL_ASSETS, selection=sel, instance=instance,
                               resources=resources, **kw).success
        keys = store.read_parquet(f"image_hashes/{shard}.parquet")["key"].to_list()
        store.write_parquet("semdedup/scores.parquet", pl.DataFrame(
            {"key": keys, "duplicate": [False] * len(keys)}))
        store.write_parquet("ppl_deciles/deciles.parquet", pl.DataFrame(
            {"key": keys, "decile": [-1] * len(keys)}, schema={"key": pl.Utf8, "decile": pl.Int16}))
        for asset, rel in (("semdedup", "semdedup/scores.parquet"),  # committed, as runs leave them
                           ("ppl_deciles", "ppl_deciles/deciles.parquet")):
            write_commit(store, asset, "all", StageCounts(len(keys), len(keys)), [rel],
                         digests=True)
        run_config = {"ops": {"curated": {"config": curated_config}}} if curated_config else None
        res = materialize(ALL_ASSETS, selection=["curated"], partition_key=shard,
                          instance=instance, resources=resources, run_config=run_config)
        assert res.success
        tq = instance.get_latest_materialization_event(AssetKey("text_quality"))
        return store, shard, res, tq.asset_materialization.metadata


def test_flags_are_stored_per_turn_and_curated_removes_the_selected_ones(tmp_path):
    store, shard, res, tq_meta = _graph(tmp_path)
    flags = store.read_parquet(f"text_quality/{shard}.parquet")
    by_key = {k: set(v) for k, v in flags.group_by("key").agg(pl.col("flag")).iter_rows()}
    got = {k.split("-")[-1]: v for k, v in by_key.items()}
    assert got["leak"] == {"template_tokens"} and got["loop"] == {"repetition"}
    assert got["echo"] == {"answer_repeats_question"} and got["mc"] == {"mc_no_option"}
    assert "clean" not in got and "clean_text" not in got
    assert set(flags["turn"].to_list()) == {1}
    assert tq_meta["flagged_samples"].value == 4
    assert tq_meta["n_in"].value == tq_meta["n_out"].value == len(RECORDS)

    decisions = store.read_parquet(f"curated/{shard}.decisions.parquet")
    reason = {k.split("-")[-1]: r for k, r in decisions.select("key", "reason").iter_rows()}
    assert reason == {"clean": None, "clean_text": None, "leak": "text_template_tokens",
                      "loop": "text_repetition", "echo": "text_answer_repeats_question",
                      "mc": None}  # mc_no_option is flagged but not in the default filters
    meta = res.asset_materializations_for_node("curated")[0].metadata
    assert meta["n_in"].value == 6 and meta["n_out"].value == 3
    assert meta["removed_text_repetition"].value == 1
    assert meta["n_in"].value == meta["n_out"].value + meta["n_removed"].value


def test_curated_applies_exactly_the_filters_its_config_selects(tmp_path):
    store, shard, res, _ = _graph(tmp_path, {"text_filters": ["mc_no_option"]})
    decisions = store.read_parquet(f"curated/{shard}.decisions.parquet")
    removed = decisions.filter(pl.col("status") == "removed")
    assert removed["reason"].to_list() == ["text_mc_no_option"]
