"""The whole graph materialized on real files from ../shared/data in a temporary root."""

import hashlib
import io
import json
from collections import defaultdict

import polars as pl
import webdataset as wds
from dagster import AssetCheckKey, AssetKey
from PIL import Image

from mm_assets.assets.interleaved import INTERLEAVED_ASSETS
from mm_assets.core.ingest.plan import read_manifest
from mm_assets.runner import ALL, ORDER, run_graph

LMMS = ["single_image.json", "single_image_has_text_only.json", "multi_images.json",
        "celeba_image_train.json", "celeba_image_eval.json"]  # as in conftest.py


def _expected_groups(ex, lf):
    """Records grouped by the sha256 of their image files, computed independently."""
    groups = defaultdict(list)
    for f, root in [(ex / n, ex / "images") for n in LMMS] + [(lf, lf.parent)]:
        for i, r in enumerate(json.loads(f.read_text())):
            imgs = r.get("image", r.get("images"))
            if not imgs:
                continue
            imgs = [imgs] if isinstance(imgs, str) else imgs
            h = "|".join(hashlib.sha256((root / p).read_bytes()).hexdigest() for p in imgs)
            groups[h].append(f"{f}:{i}")
    return sorted(sorted(v) for v in groups.values() if len(v) > 1)


def test_every_stage_succeeds_and_counts_reconcile(graph):
    s = graph["summary"]
    assert s.failed == []
    for asset in ORDER:
        c = s.counts[asset]
        assert c["n_in"] == c["n_out"] + c["n_removed"] + c["n_quarantined"], asset
    assert s.counts["raw_shards"]["n_in"] == 2 + 4 + 2 + 90 + 10 + 6
    assert s.counts["raw_shards"]["n_quarantined"] == 0


def test_counts_checks_passed_in_the_instance(graph):
    instance = graph["instance"]
    for asset in ORDER:
        ev = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [AssetCheckKey(AssetKey(asset), "counts_reconcile")])
        [execution] = ev.values()
        assert execution.status.value == "SUCCEEDED", asset
    # the latest check is one partition; every recipe's materialization must reconcile too
    mats = instance.fetch_materializations(AssetKey("mixtures"), limit=1000).records
    by_recipe = {}
    for m in mats:
        by_recipe.setdefault(m.asset_materialization.partition, m.asset_materialization.metadata)
    assert {"exact_dedup", "baseline_raw", "curated_rephrased_3to1"} <= set(by_recipe)
    for name, md in by_recipe.items():
        v = {k: md[k].value for k in ("n_in", "n_out", "n_removed", "n_quarantined")}
        assert v["n_in"] == v["n_out"] + v["n_removed"] + v["n_quarantined"], (name, v)


def test_a_bad_recipe_fails_with_its_message(graph):
    store, instance = graph["store"], graph["instance"]
    store.write_bytes("recipes/zz_bad.yaml", b"name: zz_bad\nsource: curated\ntotal: 100000\n")
    instance.add_dynamic_partitions("recipes", ["zz_bad"])
    try:
        summary = run_graph(instance, graph["resources"], select=["mixtures"],
                            recipes=["zz_bad"])
    finally:
        store.rm("recipes/zz_bad.yaml")
    [failed] = summary.failed
    assert "mixtures[zz_bad]" in failed and "not enough samples" in failed, failed


def test_byte_identical_duplicates_are_grouped(graph):
    store = graph["store"]
    groups = store.read_parquet("exact_duplicates/groups.parquet").filter(
        pl.col("kind") == "image")
    manifests = {}
    for shard in graph["shards"]:
        for rec in read_manifest(store, shard)[1]:
            manifests[rec.key] = rec.location
    found = sorted(sorted(manifests[k] for k in g["key"].to_list())
                   for _, g in groups.group_by("group_id"))
    assert found == _expected_groups(graph["ex"], graph["lf"])
    assert len(found) == 5  # bm, curry (lmms-finetune) and the 3 mllm_demo pairs


def test_text_only_records_survive_exact_dedup(graph):
    store = graph["store"]
    groups = store.read_parquet("exact_duplicates/groups.parquet")
    assert groups.filter(pl.col("kind") == "text").height == 0
    kept = pl.concat([store.read_parquet(f"curated/{s}.decisions.parquet")
                      for s in graph["shards"]])
    hashes = pl.concat([store.read_parquet(f"image_hashes/{s}.parquet") for s in graph["shards"]])
    text_keys = hashes.filter(pl.col("list_hash").is_null())["key"].to_list()
    assert len(text_keys) == 2
    assert kept.filter(pl.col("key").is_in(text_keys))["status"].to_list() == ["kept", "kept"]


def test_samples_sharing_an_image_are_merged(graph):
    from mm_assets.assets._common import read_sharded

    merged = list(read_sharded(graph["store"], "merged"))
    multi = [s for s in merged if s.metadata.get("n_merged", 1) > 1]
    assert len(multi) == 5
    for s in multi:
        text = "\n".join(t["value"] for t in s.conversations)
        assert text.count("<image>") == len(s.images)
        assert len(s.metadata["merged_from"]) == 2


def test_final_shards_open_with_webdataset(graph):
    store = graph["store"]
    manifest = store.read_json("mixtures/curated_all/manifest.json")
    urls = [store.path(p) for p in manifest["shards"]]
    seen = 0
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        meta = json.loads(sample["json"])
        assert meta["conversations"] and meta["key"] == sample["__key__"]
        for name in meta["images"]:  # extension from content: some ".jpg" inputs are WebP
            fmt = Image.open(io.BytesIO(sample[name])).format
            assert {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}[fmt] == name.split(".")[1]
        seen += 1
    assert seen == sum(manifest["counts"].values()) > 0
    mix = store.read_json("mixtures/text_mm_1to3/manifest.json")
    assert mix["counts"]["text"] * 3 == mix["counts"]["multimodal"]


def _graphql(port, query):
    import requests

    r = requests.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}, timeout=30)
    r.raise_for_status()
    return r.json()["data"]


def test_webserver_shows_lineage_and_the_materializations(graph, tmp_path):
    """dagster-webserver, started for real on 127.0.0.1 over the same instance and root."""
    import os
    import socket
    import subprocess
    import sys
    import time

    import requests

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, DAGSTER_HOME=graph["instance"].root_directory,
               MM_ASSETS_ROOT=graph["store"].root)
    exe = os.path.join(os.path.dirname(sys.executable), "dagster-webserver")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([exe, "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=repo, env=env, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "web.log", "wb"))
    try:
        for _ in range(120):
            try:
                if requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok:
                    break
            except requests.ConnectionError:
                time.sleep(0.5)
        nodes = _graphql(port, "{ assetNodes { assetKey { path } dependencyKeys { path } } }")
        deps = {n["assetKey"]["path"][0]: {d["path"][0] for d in n["dependencyKeys"]}
                for n in nodes["assetNodes"]}
        on_request = {"eval_results", "ablations"} | {  # evals; `mm-assets interleaved run`
            k.path[0] for a in INTERLEAVED_ASSETS for k in a.keys}
        assert set(deps) == set(ALL) | on_request
        assert deps["mixtures"] == {"raw_shards", "exact_duplicates", "clusters", "curated",
                                    "merged", "rephrased", "synthetic_checked", "mined",
                                    "interleaved_docs", "docs_curated"}
        assert deps["eval_results"] == {"mixtures"}
        for asset in ORDER:
            data = _graphql(port, '{ assetOrError(assetKey: {path: ["%s"]}) { ... on Asset '
                            '{ assetMaterializations(limit: 1) { runId metadataEntries '
                            '{ label } } } } }' % asset)
            [mat] = data["assetOrError"]["assetMaterializations"]
            assert "n_in" in {e["label"] for e in mat["metadataEntries"]}, asset
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_mixture_rebuild_is_byte_identical_and_traceable(graph):
    from dagster import materialize

    from mm_assets.assets._common import read_shard
    from mm_assets.definitions import ALL_ASSETS
    from mm_assets.loader import export_index, iter_mixture

    store, instance = graph["store"], graph["instance"]
    manifest = store.read_json("mixtures/curated_all/manifest.json")
    before = {p: store.read_bytes(p) for p in manifest["shards"]}
    result = materialize(ALL_ASSETS, selection=["mixtures"], partition_key="curated_all",
                         instance=instance, resources=graph["resources"])
    assert result.success
    assert {p: store.read_bytes(p) for p in manifest["shards"]} == before
    # every output sample -> its source key in the source asset -> the run that made it
    curated = {s.key for shard in graph["shards"] for s in read_shard(store, "curated", shard)}
    assert {s["source_key"] for s in manifest["samples"]} <= curated
    lineage = store.read_json("mixtures/curated_all/lineage.json")
    run = instance.get_run_by_id(lineage["upstream"]["curated"]["run_id"])
    assert run is not None and run.is_success
    loaded = list(iter_mixture(store, "curated_all"))
    assert [k for k, _, _ in loaded] == [s["key"] for s in manifest["samples"]]
    for key, images, conv in loaded:
        assert conv and all(im.size[0] > 0 for im in images)
    export_index(store, "curated_all")
    index = store.read_parquet("mixtures/curated_all/index.parquet")
    assert index.height == len(loaded) and "image_tokens" in index.columns


def test_ablation_recipes_all_build(graph):
    from mm_assets.core.shards import read_samples

    store = graph["store"]
    built = set(store.ls("mixtures"))
    assert {"baseline_raw", "exact_dedup", "curated_all", "merged_all", "rephrased_all",
            "text_mm_1to3", "ppl_deciles_0_2", "ppl_deciles_3_5", "ppl_deciles_6_9"} <= built
    base = store.read_json("mixtures/baseline_raw/manifest.json")
    exact = store.read_json("mixtures/exact_dedup/manifest.json")
    assert base["source"]["samples"] == 114  # every raw sample
    assert exact["source"]["samples"] == 114  # merge policy keeps image duplicates for merging
    deciles = [store.read_json(f"mixtures/ppl_deciles_{b}/manifest.json")["summary"]["by_decile"]
               for b in ("0_2", "3_5", "6_9")]
    assert all(0 <= int(d) <= 2 for d in deciles[0]) and all(6 <= int(d) <= 9 for d in deciles[2])
    two = store.read_json("mixtures/curated_rephrased_3to1/manifest.json")
    n_cur, n_reph = two["per_stratum"]["curated"], two["per_stratum"]["rephrased"]
    assert n_reph > 0 and abs(n_cur - 3 * (n_cur + n_reph) / 4) < 1  # 3:1 within one sample
    assert two["summary"]["by_origin"] == {"curated": n_cur, "rephrased": n_reph}
    for p in two["shards"]:  # 2 MB shards; a sample larger than that gets a shard of its own
        n = sum(1 for _ in read_samples(store.open_read(p)))
        assert store.fs.size(store.path(p)) <= 2_000_000 or n == 1
    assert len(two["shards"]) > 1
    weighted = store.read_json("mixtures/ppl_decile_weighted/manifest.json")
    assert weighted["tokens"]["realised"] >= 30_000 and weighted["tokens"]["target"] == 30_000
    by_dec = weighted["summary"]["by_decile"]
    assert "0" not in by_dec and "1" not in by_dec and by_dec["4"] > by_dec["3"]


def test_min_answer_tokens_filter(graph):
    from mm_assets.core.mix.draw import token_counter
    from mm_assets.loader import iter_mixture

    store = graph["store"]
    m = store.read_json("mixtures/curated_long_answers/manifest.json")["source"]
    assert m["eligible"] + m["filtered_min_answer_tokens"] == m["samples"]
    count = token_counter()
    for _, _, conv in iter_mixture(store, "curated_long_answers"):
        answer = "\n".join(t["value"] for t in conv if t["from"] == "gpt")
        assert count(answer) >= 8
