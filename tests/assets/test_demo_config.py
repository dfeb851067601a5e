"""The demo runs with the defaults (or the visible run config): re-materializing semdedup with
its defaults, as the UI's Materialize button or ``mm-assets run`` does, gives exactly the
demo's decisions."""

from pathlib import Path

from dagster import DagsterInstance
from typer.testing import CliRunner

from mm_assets.cli import app, demo_run_config
from mm_assets.core.ingest.plan import IngestConfig, plan_ingest
from mm_assets.demo.data import generate
from mm_assets.runner import run_graph
from resources.storage import StorageResource

UPSTREAM = ["raw_shards", "image_hashes", "embeddings", "exact_duplicates", "clusters",
            "semdedup_plan", "semdedup_range", "semdedup"]


def test_semdedup_with_its_defaults_reproduces_the_demo(tmp_path, monkeypatch):
    root, home = tmp_path / "root", tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("MM_ASSETS_ROOT", str(root))
    src = generate(tmp_path / "demo_input")
    store = StorageResource().store()
    shards = plan_ingest(store, [str(src)], str(src.parent / "images"), IngestConfig(64))
    instance = DagsterInstance.get()
    instance.add_dynamic_partitions("shards", shards)
    config = demo_run_config()  # exactly what `mm-assets demo` passes
    assert not set(config["ops"]) & set(UPSTREAM), "the demo overrides a semdedup input"
    # the demo's path (its run config, the default resources), on its first shard (64 records)
    summary = run_graph(instance, select=UPSTREAM, shards=shards[:1], run_config=config)
    assert summary.failed == []
    demo_bytes = store.read_bytes("semdedup/scores.parquet")
    demo = store.read_parquet("semdedup/scores.parquet")
    assert demo.height == 64 and 0 < int(demo["duplicate"].sum()) < 64  # real decisions
    store.rm("semdedup")
    res = CliRunner().invoke(app, ["run", "--select", "semdedup", "--root", str(root)])
    assert res.exit_code == 0, res.output
    assert store.read_bytes("semdedup/scores.parquet") == demo_bytes
    assert Path(store.path("semdedup/scores.parquet")).exists()
