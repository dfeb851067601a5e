"""The mined asset (one partition per mining recipe) through Dagster, and a mixture
curated + {mined: RECIPE} loaded back with mm_assets.loader."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import pytest
from dagster import AssetKey, instance_for_test, materialize

from mm_assets.assets.mining import mined, register_mining
from mm_assets.assets.mixtures import mixtures
from mm_assets.core import layout, schemas
from mm_assets.core.commits import read_commit
from mm_assets.core.mix.build import iter_source
from mm_assets.core.mix.recipe import RecipeError, parse_recipe
from mm_assets.core.records import Sample
from mm_assets.core.shards import write_samples
from mm_assets.loader import iter_mixture
from mm_assets.runner import LAYERS, OPTIONAL, _plan
from resources.storage import StorageResource

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core" / "mine"))
from mining_world import build_world

MINING = "fill_v1"
MIX = "curated_plus_mined"


def _root(tmp_path) -> StorageResource:
    w = build_world(str(tmp_path / "root"), str(tmp_path / "pool"), n_corpus=160, n_pool=500,
                    pool_shard=250)
    store = w.store
    curated = [Sample(k, [{"from": "human", "value": "<image>\nWhat is this?"},
                          {"from": "gpt", "value": f"Picture {k}."}], [b], ["png"], "gen")
               for k, b in list(w.corpus.items())[:120]]
    with store.open_write(layout.curated_shard("000000")) as f:
        write_samples(f, curated)
    store.write_bytes(layout.mining_recipe(f"{MINING}.yaml"),
                      f"name: {MINING}\npools: [testpool]\nfill_to: median\nmin_sim: 0.2\n"
                      "caption: {min_chars: 10}\ndedup: {phash_radius: 6, cosine: 0.9}\n"
                      "seed: 4\nshard_size: 16\n".encode())
    store.write_bytes(layout.recipe(f"{MIX}.yaml"),
                      f"name: {MIX}\nsources: [curated, {{mined: {MINING}}}]\n"
                      f"ratio: {{curated: 3, {MINING}: 1}}\ntotal: 80\nseed: 1\n"
                      "shard_size: 32\n".encode())
    return StorageResource(root=str(tmp_path / "root"))


def test_mined_partition_then_a_mixture_of_curated_and_mined(tmp_path):
    storage = _root(tmp_path)
    store = storage.store()
    with instance_for_test() as instance:
        assert register_mining(instance, storage) == [MINING]  # the root's own recipes
        instance.add_dynamic_partitions("recipes", [MIX])
        with pytest.raises(FileNotFoundError, match=rf"materialize mined\[{MINING}\] first"):
            next(iter_source(store, parse_recipe(  # nothing mined yet: named in the error
                (store.read_bytes(layout.recipe(f"{MIX}.yaml"))).decode()).sources[1], [],
                Counter()))
        res = materialize([mined], partition_key=MINING, instance=instance,
                          resources={"storage": storage})
        assert res.success
        meta = res.asset_materializations_for_node("mined")[0].metadata
        assert meta["reconciles"].value and meta["n_in"].value == 500 + 500 // 97 + 1
        checks = {c.check_name: c.passed for c in res.get_asset_check_evaluations()}
        assert checks == {"counts_reconcile": True}
        rec = read_commit(store, "mined", MINING)
        man = store.read_json(layout.mined_manifest(MINING))
        assert rec["counts"]["n_out"] == man["totals"]["taken"] == meta["n_out"].value > 0
        assert man["totals"]["shortfall"] == 0
        assert man["totals"]["taken"] == man["totals"]["wanted"]
        assert sum(r.endswith(".tar") for r in rec["outputs"]) == -(-man["totals"]["taken"]
                                                                    // 16)
        res = materialize([mixtures], partition_key=MIX, instance=instance,
                          resources={"storage": storage})
        assert res.success
        lineage = store.read_json(layout.mixture_lineage(MIX))["upstream"]
        assert lineage[f"mined:{MINING}"]["mining_recipe"] == MINING
        mix = store.read_json(layout.mixture_manifest(MIX))  # mined images keep their cluster
        sel = store.read_table(layout.mined_selection(MINING), schemas.MINED_SELECTION)
        cl = dict(zip(sel["out_key"], sel["cluster"], strict=True))
        drawn = [r for r in mix["samples"] if r["key"].startswith(MINING)]
        assert len(drawn) == 20 and all(r["cluster"] == f"image:{cl[r['source_key']]}"
                                        for r in drawn)
        assert "none" not in mix["summary"]["by_cluster"]
        assert instance.get_latest_materialization_event(AssetKey("mined")) is not None
    loaded = list(iter_mixture(store, MIX))
    origin = Counter(k.split("-")[0] for k, _, _ in loaded)
    assert origin == {"curated": 60, MINING: 20}
    mined_ones = [(k, im, c) for k, im, c in loaded if k.startswith(MINING)]
    assert all(len(im) == 1 and im[0].size[0] > 0 for _, im, _ in mined_ones)
    assert all(c[0]["value"] == "<image>\nDescribe the image." and len(c[1]["value"]) >= 10
               for _, _, c in mined_ones)


def test_mined_source_validation_and_runner_layer():
    r = parse_recipe("name: x\nsources: [curated, {mined: div_v1}]\n")
    assert r.sources[1].mined == "div_v1" and r.sources[1].name == "div_v1"
    for bad in ("{mined: 'a b'}", "{mined: a, wds: /x}"):
        try:
            parse_recipe(f"name: x\nsources: [{bad}]\n")
        except RecipeError as e:
            assert "sources" in str(e)
        else:
            raise AssertionError(bad)
    kinds = [k for k, names in LAYERS if "mined" in names]
    assert kinds == ["mining"] and "mined" in OPTIONAL
    names = [n for _, ns in LAYERS for n in ns]
    assert names.index("clusters") < names.index("mined") < names.index("mixtures")
    steps = _plan(["mined"], [], [], None, False, minings=["a", "b"])
    assert steps == [(["mined"], ["a", "b"])]


def test_mine_command_runs_the_root_recipes_and_prints_the_table(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from mm_assets.cli import app

    storage = _root(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    res = CliRunner().invoke(app, ["mine", "--root", storage.root])
    assert res.exit_code == 0, res.output
    man = storage.store().read_json(layout.mined_manifest(MINING))
    assert f"mined[{MINING}]" in res.output
    total = res.output.strip().splitlines()[-1].split()
    assert total[:4] == ["total", str(man["totals"]["wanted"]), str(man["totals"]["candidates"]),
                         str(man["totals"]["taken"])]
    bad = CliRunner().invoke(app, ["mine", "--root", storage.root, "--recipes", "nope"])
    assert bad.exit_code == 2 and "unknown mining recipe" in bad.output
    storage.store().write_bytes(layout.mining_recipe("typo.yaml"),
                                b"name: typo\npools: [testpool]\nfill_to: medain\n")
    typo = CliRunner().invoke(app, ["mine", "--root", storage.root, "--recipes", "typo"])
    assert typo.exit_code == 2 and "fill_to" in typo.output, typo.output  # before any run
    assert "mined[typo]" not in typo.output
    storage.store().rm(layout.mining_recipe("typo.yaml"))
    st = CliRunner().invoke(app, ["status", "--root", storage.root])
    [row] = [ln.split() for ln in st.output.splitlines() if ln.startswith("mined ")]
    assert row[1:] == ["1", "0", "0"], st.output  # the recipe's partition: materialized
