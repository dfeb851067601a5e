"""pool_assign through Dagster: one partition per pool shard, commit records and counts check,
the encoder sidecar, byte-identical re-runs, stale shards after re-clustering, and the refusal
of another encoder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from dagster import AssetKey, instance_for_test, materialize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core" / "mine"))
from pool_world import build_corpus

from mm_assets.assets.pool import pool_assign
from mm_assets.core import layout, schemas
from mm_assets.core.commits import read_commit
from mm_assets.core.mine.pool import add_pool, all_partition_keys
from mm_assets.core.mine.pool_shard import assigned_shards, read_sidecar, stale_shards
from mm_assets.core.mine.poolgen import PoolGenConfig, corpus_images, generate_pool
from resources.models import EmbedderResource, LanguageModelResource
from resources.storage import StorageResource


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("pool_asset")
    store, keys = build_corpus(str(base / "root"), per_kind=1)
    truth = generate_pool(str(base / "pool"), PoolGenConfig(
        n=6, shard_size=5, n_exact=2, n_no_caption=1, size=96, seed=2),
        corpus_images(store, 10))
    add_pool(store, "gen", [str(base / "pool")])
    return store, keys, truth


def _run(instance, store, key, **embedder):
    return materialize([pool_assign], partition_key=key, instance=instance, raise_on_error=False,
                       resources={"storage": StorageResource(root=store.root),
                                  "embedder": EmbedderResource(device="cpu", **embedder)})


def test_pool_assign_partitions(world):
    store, keys, truth = world
    parts = all_partition_keys(store)
    assert parts == ["gen__00000000", "gen__00000001"]
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("pool_shards", parts)
        for key in parts:
            res = _run(instance, store, key)
            assert res.success, key
        ev = instance.get_latest_materialization_event(AssetKey("pool_assign"))
        meta = ev.asset_materialization.metadata
        assert meta["encoder"].value == "efficientnet_lite0"
        checks = [e for e in res.get_asset_check_evaluations()]
        assert checks and all(c.passed for c in checks)
    assert assigned_shards(store, "gen") == ["00000000", "00000001"]
    n_ok = truth.filter(truth["expect"] == "ok").height
    tables = [store.read_table(layout.pool_assign("gen", s), schemas.POOL_ASSIGN)
              for s in ("00000000", "00000001")]
    assert sum(t.height for t in tables) == n_ok == 8
    for stem, t in zip(("00000000", "00000001"), tables, strict=True):
        rec = read_commit(store, "pool_assign", f"gen__{stem}")["counts"]
        assert rec["n_in"] == truth.filter(truth["shard"] == stem).height
        assert rec["n_out"] == t.height and rec["n_in"] == t.height + sum(
            rec["quarantined"].values())
        vec = store.read_npy(layout.pool_vectors("gen", stem))
        assert vec.shape == (t.height, 1280) and vec.dtype == np.float16
        side = read_sidecar(store, "gen", stem)
        assert side["encoder"]["model"] == "efficientnet_lite0" and side["rows"] == t.height
        assert side["centroids"]["k"] == len(keys)
    assert sum(read_commit(store, "pool_assign", p)["counts"]["quarantined"].get(
        "missing_caption", 0) for p in parts) == 1
    got = {r["wds_key"]: r["cluster"] for t in tables for r in t.iter_rows(named=True)}
    for row in truth.filter(truth["how"] == "exact").iter_rows(named=True):
        assert got[row["wds_key"]] == keys.index(row["copy_of"])


def test_rerun_is_byte_identical_and_stale_after_reclustering(world):
    store, _, _ = world
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("pool_shards", ["gen__00000001"])
        before = {rel: store.read_bytes(rel) for rel in (
            layout.pool_assign("gen", "00000001"), layout.pool_vectors("gen", "00000001"),
            layout.pool_sidecar("gen", "00000001"))}
        assert _run(instance, store, "gen__00000001").success
        assert {rel: store.read_bytes(rel) for rel in before} == before
    assert stale_shards(store, "gen") == []
    cents = store.read_npy(layout.centroids("image"))
    saved = store.read_bytes(layout.centroids("image"))
    store.write_npy(layout.centroids("image"), np.asarray(cents)[::-1].copy())
    try:
        assert stale_shards(store, "gen") == ["00000000", "00000001"]
        from mm_assets.core.mine.recipe import parse_mining_recipe
        from mm_assets.core.mine.select import MiningError, select
        from mm_assets.runner import _plan

        # stale shards are "missing" for run --missing, and mining refuses them (the tryout's
        # mine ran on them silently: the new cluster 3 got 0 candidates)
        # (decided when the layer starts: a re-cluster earlier in the same call counts)
        [(chosen, keys)] = _plan(["pool_assign"], [], [], store, True)
        assert chosen == ["pool_assign"] and keys() == ["gen__00000000", "gen__00000001"]
        with pytest.raises(MiningError, match="2 shard.*assigned against other centroids"):
            select(store, parse_mining_recipe("name: st\npools: [gen]\ncounts: {0: 1}\n"))
    finally:
        store.write_bytes(layout.centroids("image"), saved)


def test_run_missing_recomputes_only_the_uncommitted_pool_shard(world):
    from mm_assets.runner import run_graph

    store, _, _ = world
    resources = {"storage": StorageResource(root=store.root),
                 "embedder": EmbedderResource(device="cpu"), "lm": LanguageModelResource()}
    with instance_for_test() as instance:
        run_graph(instance, resources, select=["pool_assign"], missing_only=True)  # all done
        store.rm(layout.commit("pool_assign", "gen__00000001"))
        summary = run_graph(instance, resources, select=["pool_assign"], missing_only=True)
        assert not summary.failed and summary.runs == 1, summary
        assert instance.get_dynamic_partitions("pool_shards") == ["gen__00000000",
                                                                  "gen__00000001"]
    assert assigned_shards(store, "gen") == ["00000000", "00000001"]


def test_run_shards_selects_pool_shards(world, tmp_path, monkeypatch):
    """``run --shards NAME__STEM`` / ``NAME__*`` pick pool_assign partitions (before: every
    pool shard ran whatever --shards said); an unknown one exits 2 before any run."""
    from typer.testing import CliRunner

    from mm_assets.cli import app
    from mm_assets.core.commits import read_commits

    store, _, _ = world
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MM_ASSETS_ROOT", store.root)
    for key in ("gen__00000000", "gen__00000001"):
        store.rm(layout.commit("pool_assign", key))
    runner = CliRunner()
    args = ["run", "--select", "pool_assign", "--root", store.root, "--shards"]
    res = runner.invoke(app, [*args, "gen__00000001"])
    assert res.exit_code == 0, res.output
    assert sorted(read_commits(store, "pool_assign")) == ["gen__00000001"]
    for bad in ("gen__00000009", "nope__*"):
        res = runner.invoke(app, [*args, bad])
        assert res.exit_code == 2 and "unknown pool shard" in res.output, res.output
        assert "pools: gen" in res.output
    res = runner.invoke(app, [*args, "gen__*", "--missing"])
    assert res.exit_code == 0, res.output
    assert sorted(read_commits(store, "pool_assign")) == ["gen__00000000", "gen__00000001"]
    res = runner.invoke(app, ["run", "--select", "mined", "--recipes", "nope", "--root",
                              store.root])  # --recipes applies to mining recipes: exit 2
    assert res.exit_code == 2 and "unknown mining recipe 'nope'" in res.output, res.output


def test_another_encoder_is_refused(world):
    store, _, _ = world
    rel = layout.embedding_encoder("000000")
    saved = store.read_bytes(rel)  # the corpus as if embedded by another model
    ident = json.loads(saved)
    store.write_bytes(rel, json.dumps({**ident, "model": "ViT-B-16-SigLIP2",
                                       "weights_sha256": "0123abcd0123abcd", "dim": 768}).encode())
    try:
        with instance_for_test() as instance:
            instance.add_dynamic_partitions("pool_shards", ["gen__00000000"])
            commit = store.read_bytes(layout.commit("pool_assign", "gen__00000000"))
            res = _run(instance, store, "gen__00000000")
            assert not res.success
            err = str(res.get_step_failure_events()[0].event_specific_data.error)
            assert "is not the corpus encoder" in err and "ViT-B-16-SigLIP2" in err
            assert "efficientnet_lite0" in err and "0123abcd0123abcd" in err
            assert store.read_bytes(layout.commit("pool_assign", "gen__00000000")) == commit
    finally:
        store.write_bytes(rel, saved)


def test_new_data_sensor_picks_up_new_pool_shards(tmp_path):
    import shutil

    from dagster import build_sensor_context

    from sensors.new_data import new_data_sensor

    src = tmp_path / "gen"
    generate_pool(str(src), PoolGenConfig(n=6, shard_size=3, size=48, seed=1))
    storage = StorageResource(root=str(tmp_path / "root"))
    store = storage.store()
    pool = tmp_path / "pool"
    pool.mkdir()
    shutil.copy(src / "00000000.tar", pool / "00000000.tar")
    add_pool(store, "p", [str(pool)])
    with instance_for_test() as instance:
        def tick():
            res = new_data_sensor(build_sensor_context(instance=instance,
                                                       resources={"storage": storage}))
            for req in res.dynamic_partitions_requests:
                instance.add_dynamic_partitions(req.partitions_def_name, req.partition_keys)
            return res

        res = tick()  # not clustered yet: partitions, no run
        assert [(r.partitions_def_name, list(r.partition_keys))
                for r in res.dynamic_partitions_requests if r.partition_keys] == [
            ("pool_shards", ["p__00000000"])]
        assert not res.run_requests
        store.write_npy(layout.centroids("image"), np.eye(2, 8, dtype=np.float32))
        shutil.copy(src / "00000001.tar", pool / "00000001.tar")  # a new shard appears
        res = tick()
        assert [(r.job_name, r.partition_key, r.run_key) for r in res.run_requests] == [
            ("pool_assign_job", "p__00000001", "pool-p__00000001")]
        assert instance.get_dynamic_partitions("pool_shards") == ["p__00000000", "p__00000001"]
        assert not tick().run_requests  # nothing new


def test_cli_pool_add_and_list(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from mm_assets.cli import app

    generate_pool(str(tmp_path / "pool"), PoolGenConfig(n=4, shard_size=2, size=48, seed=9))
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    root = str(tmp_path / "root")
    monkeypatch.setenv("MM_ASSETS_ROOT", root)  # restored after the test (the CLI sets it)
    runner = CliRunner()
    res = runner.invoke(app, ["pool", "add", "dc", str(tmp_path / "pool"), "--root", root])
    assert res.exit_code == 0, res.output
    assert "2 shard(s)" in res.output and "dc__00000000 … dc__00000001" in res.output
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        assert instance.get_dynamic_partitions("pool_shards") == ["dc__00000000", "dc__00000001"]
    res = runner.invoke(app, ["pool", "list", "--root", root])
    assert res.exit_code == 0 and "dc: shards 2, assigned 0, stale 0" in res.output
    res = runner.invoke(app, ["pool", "add", "d__c", str(tmp_path / "pool"), "--root", root])
    assert res.exit_code == 2 and "bad pool name" in res.output
    res = runner.invoke(app, ["pool", "add", "x", str(tmp_path / "nope"), "--root", root])
    assert res.exit_code == 2 and "does not exist" in res.output
