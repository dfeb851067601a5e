"""What commit records gate (found by a fresh-user tryout): a shard whose records were all
quarantined still gets a (empty) curated index; curated names a global input that was never
materialized instead of failing on a missing file; a global stage refuses to describe part of the
corpus when a shard raw_shards committed has no committed upstream partition; and `run --missing`
recomputes a partition that has no commit record even if Dagster recorded a materialization."""

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from mm_assets.assets._common import upstream_shards
from mm_assets.assets.curated import build_shard_index, index_fingerprint, read_index
from mm_assets.core import layout, schemas
from mm_assets.core.commits import GLOBAL, UncommittedError, read_commits, write_commit
from mm_assets.core.records import StageCounts
from mm_assets.core.storage import Store


def _hashes(keys: list[str]) -> pl.DataFrame:
    rows = {c: [None] * len(keys) for c in schemas.IMAGE_HASHES}
    rows.update(key=keys, source=["t"] * len(keys), n_images=[0] * len(keys))
    return pl.DataFrame(rows, schema=schemas.IMAGE_HASHES)


def _root(tmp_path) -> Store:
    store = Store(str(tmp_path / "root"))
    for shard, keys in (("000000", ["a", "b"]), ("000001", [])):  # 000001: all quarantined
        store.write_table(layout.image_hashes(shard), _hashes(keys), schemas.IMAGE_HASHES)
        write_commit(store, "raw_shards", shard, StageCounts(len(keys) + 1, len(keys),
                                                             quarantined={"bad_json": 1}))
        write_commit(store, "image_hashes", shard, StageCounts(len(keys), len(keys)))
    return store


def _globals(store: Store) -> None:
    tables = {"exact_duplicates": (layout.EXACT_GROUPS, pl.DataFrame(schema=schemas.EXACT_GROUPS)),
              "semdedup": (layout.SEMDEDUP_SCORES, pl.DataFrame(schema=schemas.SEMDEDUP_SCORES)),
              "ppl_deciles": (layout.PPL_DECILES_TABLE, pl.DataFrame(
                  {"key": ["a", "b"], "ppl": [3.0, 9.0], "source": ["t", "t"],
                   "decile": [0, 9], "global_decile": [0, 9]}, schema=schemas.PPL_DECILES))}
    for asset, (rel, df) in tables.items():
        store.write_parquet(rel, df)
        write_commit(store, asset, GLOBAL, StageCounts(df.height, df.height), [rel],
                     digests=True)


def test_an_all_quarantined_shard_gets_an_empty_index(tmp_path):
    store = _root(tmp_path)
    _globals(store)
    fp = index_fingerprint(store)
    build_shard_index(store, fp, ["000001"])  # what curated does before its shards
    exact, semdup, deciles = read_index(store, fp, "000001")
    assert exact.height == 0 and semdup == set() and deciles == {}
    assert read_index(store, fp, "000000")[2] == {"a": 0, "b": 9}


def test_curated_names_a_global_input_never_materialized(tmp_path):
    store = _root(tmp_path)
    with pytest.raises(UncommittedError, match="exact_duplicates is not materialized"):
        index_fingerprint(store)


def test_a_global_stage_refuses_part_of_the_corpus(tmp_path):
    store = _root(tmp_path)
    store.rm(layout.commit("image_hashes", "000001"))  # e.g. an interrupted run
    with pytest.raises(UncommittedError, match=r"image_hashes is not committed for 1 shard.*"
                                               r"000001.*--missing"):
        upstream_shards(store, "image_hashes")


def test_run_missing_recomputes_a_partition_without_commit_record(tmp_path):
    env = {**os.environ, "MM_ASSETS_ROOT": str(tmp_path / "root"),
           "DAGSTER_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    (tmp_path / "home").mkdir()
    src = tmp_path / "d.jsonl"
    src.write_text("".join(json.dumps({"id": f"d{i}", "conversations": [
        {"from": "human", "value": f"Q{i}?"}, {"from": "gpt", "value": f"A {i}."}]}) + "\n"
        for i in range(6)))
    cli = [str(Path(sys.executable).with_name("mm-assets"))]

    def run(*args):
        r = subprocess.run([*cli, *args], env=env, capture_output=True, text=True, timeout=300,
                           check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        return r.stdout

    run("ingest", "--input", str(src), "--shard-size", "3")
    run("run", "--select", "raw_shards,text_quality")
    store = Store(str(tmp_path / "root"))
    store.rm(layout.commit("text_quality", "000000"))  # materialized in Dagster, not committed
    out = run("run", "--select", "raw_shards,text_quality", "--missing")
    assert "[000000]" in out and "[000001]" not in out
    assert sorted(read_commits(store, "text_quality")) == ["000000", "000001"]
