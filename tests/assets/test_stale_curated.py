"""Curated shards applying superseded global decisions (fresh-user tryout S1): a curated shard
records the version of exact_duplicates / semdedup / ppl_deciles it was curated with; after
those tables change it is stale: `run --missing` re-curates it (decided when the curated layer
starts, after the global layers of the same call) and `merged` refuses it."""

import polars as pl
import pytest

from mm_assets.assets.curated import (
    index_fingerprint,
    require_current_curated,
    stale_curated,
)
from mm_assets.core import layout, schemas
from mm_assets.core.commits import GLOBAL, UncommittedError, read_commit, write_commit
from mm_assets.core.records import StageCounts
from mm_assets.core.storage import Store
from mm_assets.runner_plan import _batched, _plan

SHARDS = ["000000", "000001", "000002"]


def _commit_exact(store: Store, remove: list[str], keep: str = "a") -> None:
    """exact_duplicates committed by hand: ``remove`` keys removed as duplicates of ``keep``."""
    df = pl.DataFrame({"key": [keep, *remove], "representative": [keep] * (1 + len(remove)),
                       "action": ["keep"] + ["remove"] * len(remove)})
    df = df.with_columns([pl.lit(None).cast(t).alias(c) for c, t in
                          schemas.EXACT_GROUPS.items() if c not in df.columns])
    df = df.select(list(schemas.EXACT_GROUPS)).cast(schemas.EXACT_GROUPS)
    store.write_parquet(layout.EXACT_GROUPS, df)
    write_commit(store, "exact_duplicates", GLOBAL, StageCounts(df.height, df.height),
                 [layout.EXACT_GROUPS], digests=True)


def _root_tables(store: Store) -> None:
    """The three global tables curated reads, committed by hand (no duplicate)."""
    _commit_exact(store, [])
    for asset, rel, schema in (("semdedup", layout.SEMDEDUP_SCORES, schemas.SEMDEDUP_SCORES),
                               ("ppl_deciles", layout.PPL_DECILES_TABLE, schemas.PPL_DECILES)):
        store.write_parquet(rel, pl.DataFrame(schema=schema))
        write_commit(store, asset, GLOBAL, StageCounts(0, 0), [rel], digests=True)


def _root(tmp_path) -> Store:
    store = Store(str(tmp_path / "root"))
    for shard in SHARDS:
        write_commit(store, "raw_shards", shard, StageCounts(2, 2))
    _root_tables(store)
    fp = index_fingerprint(store)
    for shard in SHARDS:  # curated against the current tables
        write_commit(store, "curated", shard, StageCounts(2, 2),
                     inputs={"index_fingerprint": fp})
    return store


def test_curated_goes_stale_when_the_global_decisions_change(tmp_path):
    store = _root(tmp_path)
    before = index_fingerprint(store)
    assert stale_curated(store) == []
    require_current_curated(store)  # current: merged may read them
    _commit_exact(store, ["b"])  # e.g. a new input made "b" a duplicate
    assert index_fingerprint(store) != before
    assert stale_curated(store) == SHARDS
    with pytest.raises(UncommittedError, match=r"3 curated shard.*000000.*older global "
                                               r"decisions.*run --select curated --missing"):
        require_current_curated(store)
    # re-curating one shard against the new tables makes only that one current
    write_commit(store, "curated", "000001", StageCounts(2, 2),
                 inputs={"index_fingerprint": index_fingerprint(store)})
    assert stale_curated(store) == ["000000", "000002"]


def test_a_record_without_fingerprint_is_stale(tmp_path):
    store = _root(tmp_path)
    write_commit(store, "curated", "000002", StageCounts(2, 2))  # written before this fix
    assert read_commit(store, "curated", "000002").get("inputs") is None
    assert stale_curated(store) == ["000002"]


def test_run_missing_decides_curated_staleness_when_the_layer_starts(tmp_path):
    store = _root(tmp_path)
    store.rm(layout.commit("curated", "000002"))  # e.g. the new shard
    steps = _plan(["exact_duplicates", "curated"], SHARDS, [], store, True)
    assert steps[0] == (["exact_duplicates"], [None])
    chosen, keys = steps[1]
    assert chosen == ["curated"] and callable(keys)
    batched = _batched(steps, SHARDS, 8)[1][1]
    assert keys() == ["000002"] and batched() == ["000002"]  # tables not changed yet
    _commit_exact(store, ["b"])  # what the global layer before it does in the same call
    assert keys() == SHARDS
    assert batched() == [tuple(SHARDS)]  # still one partition-range run
    assert _batched(steps, SHARDS, 2)[1][1]() == [("000000", "000001"), "000002"]


def test_without_missing_every_shard_is_curated(tmp_path):
    store = _root(tmp_path)
    assert _plan(["curated"], SHARDS, [], store, False) == [(["curated"], SHARDS)]


def test_run_missing_recurates_and_merged_refuses_stale_shards(tmp_path):
    """The asset path end to end on 6 text-only samples (global tables committed by hand)."""
    import json

    from dagster import instance_for_test

    from mm_assets.core.ingest.plan import IngestConfig, plan_ingest
    from mm_assets.runner import run_graph
    from resources.models import EmbedderResource, LanguageModelResource
    from resources.storage import StorageResource

    storage = StorageResource(root=str(tmp_path / "root"))
    store = storage.store()
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps({"id": f"d{i}", "conversations": [
        {"from": "human", "value": f"Question {i}?"}, {"from": "gpt", "value": f"Answer {i}."}]})
        + "\n" for i in range(6)))
    shards = plan_ingest(store, [str(src)], None, IngestConfig(shard_size=3))
    assert len(shards) == 2
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", shards)
        resources = {"storage": storage, "embedder": EmbedderResource(device="cpu"),
                     "lm": LanguageModelResource()}  # neither loads a model here
        s = run_graph(instance, resources, select=["raw_shards", "image_hashes"])
        assert not s.failed, s.failed
        keys = {sh: store.read_table(layout.image_hashes(sh), schemas.subset(
            schemas.IMAGE_HASHES, "key"))["key"].to_list() for sh in shards}
        _root_tables(store)
        s = run_graph(instance, resources, select=["curated"], missing_only=True)
        assert not s.failed and s.runs == 2, s
        assert stale_curated(store) == []
        rec = read_commit(store, "curated", shards[0])
        assert rec["inputs"] == {"index_fingerprint": index_fingerprint(store)}
        s = run_graph(instance, resources, select=["curated"], missing_only=True)
        assert s.runs == 0  # nothing stale, nothing missing

        dup = keys[shards[1]][0]  # the decisions change: a key of the 2nd shard is removed
        _commit_exact(store, [dup], keep=keys[shards[0]][0])
        assert stale_curated(store) == shards
        s = run_graph(instance, resources, select=["merged"])
        assert s.failed and "run --select curated --missing" in s.failed[0], s.failed
        s = run_graph(instance, resources, select=["curated"], missing_only=True)
        assert not s.failed and s.runs == 2, s  # both shards re-curated, not only one
        dec = store.read_table(layout.curated_decisions(shards[1]), schemas.CURATED_DECISIONS)
        assert dec.filter(pl.col("key") == dup)["status"].to_list() == ["removed"], dec
        assert stale_curated(store) == []
        s = run_graph(instance, resources, select=["merged"])
        assert not s.failed, s.failed
