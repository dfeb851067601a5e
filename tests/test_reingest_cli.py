"""``mm-assets ingest --force`` end to end: an input ingested without ``--images`` is
quarantined by raw_shards; the "already ingested" line names --force; ``ingest --force
--images`` replaces its shard and ``run --missing`` recomputes exactly that shard."""

import io
import json

from PIL import Image
from typer.testing import CliRunner

from mm_assets.cli import app
from mm_assets.core.commits import read_commit, read_commits
from mm_assets.core.storage import Store
from mm_assets.reingest import downstream
from mm_assets.runner import get_instance


def test_downstream_of_the_manifests_from_the_asset_graph():
    d = downstream()
    assert {"raw_shards", "image_hashes", "embeddings", "ppl_scores", "text_quality",
            "curated"} == set(d.shard_assets)
    assert {"exact_duplicates", "clusters", "semdedup", "semdedup_range", "ppl_deciles",
            "merged", "rephrased", "mixtures", "mined", "report"} <= set(d.other_assets)
    assert not {"pool_assign", "eval_results", "ablations", "synthetic"} & set(d.other_assets)


def test_force_reingest_then_run_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MM_ASSETS_ROOT", str(tmp_path / "root"))
    data, imgs = tmp_path / "data", tmp_path / "pictures"
    data.mkdir()
    imgs.mkdir()
    recs = []
    for i in range(3):
        buf = io.BytesIO()
        Image.new("RGB", (20, 16), (60 * i, 90, 30)).save(buf, "PNG")
        (imgs / f"{i}.png").write_bytes(buf.getvalue())
        recs.append({"id": i, "image": f"{i}.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour?"},
            {"from": "gpt", "value": f"Shade {i}."}]})
    (data / "a.json").write_text(json.dumps(recs))
    (data / "b.jsonl").write_text(json.dumps({"conversations": [
        {"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]}) + "\n")
    cli = CliRunner()
    r = cli.invoke(app, ["ingest", "--input", str(data / "a.json"), "--input",
                         str(data / "b.jsonl")])  # images are not beside a.json: forgotten
    assert r.exit_code == 0, r.output
    assert cli.invoke(app, ["run", "--select", "raw_shards"]).exit_code == 0
    store = Store(str(tmp_path / "root"))
    bad = read_commit(store, "raw_shards", "000000")["counts"]
    assert bad["n_out"] == 0 and sum(bad["quarantined"].values()) == 3
    b_before = read_commit(store, "raw_shards", "000001")

    again = cli.invoke(app, ["ingest", "--input", str(data / "a.json"), "--images", str(imgs)])
    assert again.exit_code == 0 and "already ingested" in again.output
    assert "--force" in again.output and "0 new shard(s)" in again.output

    forced = cli.invoke(app, ["ingest", "--input", str(data / "a.json"), "--images", str(imgs),
                              "--force"])
    assert forced.exit_code == 0, forced.output
    assert "replaces shard(s) 000000" in forced.output and "run --missing" in forced.output
    assert set(read_commits(store, "raw_shards")) == {"000001"}
    assert sorted(get_instance().get_dynamic_partitions("shards")) == ["000000", "000001"]

    r = cli.invoke(app, ["run", "--select", "raw_shards", "--missing"])
    assert r.exit_code == 0, r.output
    good = read_commit(store, "raw_shards", "000000")["counts"]
    assert good["n_in"] == good["n_out"] == 3 and not good["quarantined"]
    assert read_commit(store, "raw_shards", "000001") == b_before  # untouched
