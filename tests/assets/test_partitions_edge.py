"""A shard whose every row is removed, and two concurrent runs on one partition."""

import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import webdataset as wds
from dagster import AssetKey, instance_for_test, materialize
from PIL import Image

from mm_assets.core.ingest.plan import IngestConfig, plan_ingest
from mm_assets.definitions import ALL_ASSETS, default_resources
from resources.storage import StorageResource

BIN = Path(sys.executable).parent / "mm-assets"


def test_a_shard_with_every_record_quarantined_is_still_materialized(tmp_path):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"broken": \n{"id": 1, "image": "nope.png", "conversations": '
                   '[{"from": "human", "value": "<image>q"}, {"from": "gpt", "value": "a"}]}\n'
                   '{"id": 2, "video": "v.mp4", "conversations": []}\n')
    storage = StorageResource(root=str(tmp_path / "root"))
    store = storage.store()
    [shard] = plan_ingest(store, [str(src)], None, IngestConfig())
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", [shard])
        res = materialize(ALL_ASSETS, selection=["raw_shards", "image_hashes"],
                          partition_key=shard, instance=instance,
                          resources={**default_resources(), "storage": storage})
        assert res.success
        for a in ("raw_shards", "image_hashes"):
            assert instance.get_materialized_partitions(AssetKey(a)) == {shard}
    meta = res.asset_materializations_for_node("raw_shards")[0].metadata
    assert (meta["n_in"].value, meta["n_out"].value, meta["n_quarantined"].value) == (3, 0, 3)
    assert list(wds.WebDataset([store.path(f"raw_shards/{shard}.tar")], shardshuffle=False,
                               empty_check=False)) == []
    assert store.read_parquet(f"quarantine/raw_shards/{shard}.parquet").height == 3
    assert store.read_parquet(f"image_hashes/{shard}.parquet").height == 0


def test_two_concurrent_runs_on_one_partition_leave_one_complete_result(tmp_path):
    (tmp_path / "img").mkdir()
    lines = []
    for i in range(150):
        buf = io.BytesIO()
        Image.effect_noise((160, 120), 40 + i % 50).convert("RGB").save(buf, "PNG")
        (tmp_path / "img" / f"{i}.png").write_bytes(buf.getvalue())
        lines.append(json.dumps({"id": i, "image": f"{i}.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat is this?"},
            {"from": "gpt", "value": f"Noise number {i}."}]}))
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n")
    env = dict(os.environ, MM_ASSETS_ROOT=str(tmp_path / "root"),
               DAGSTER_HOME=str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    subprocess.run([str(BIN), "ingest", "--input", str(tmp_path / "in.jsonl"), "--images",
                    str(tmp_path / "img")], env=env, check=True, capture_output=True)
    cmd = [str(BIN), "run", "--select", "raw_shards", "--shards", "0"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
             for _ in range(2)]
    outs = [p.communicate(timeout=600)[0].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    out = tmp_path / "root" / "raw_shards"
    # no temp file left: the shard and the image hashes recorded while validating it
    assert sorted(p.name for p in out.iterdir()) == ["000000.hashes.parquet", "000000.tar"]
    first = hashlib.sha256((out / "000000.tar").read_bytes()).hexdigest()
    subprocess.run(cmd, env=env, check=True, capture_output=True)  # a lone third run
    assert hashlib.sha256((out / "000000.tar").read_bytes()).hexdigest() == first
    samples = list(wds.WebDataset([str(out / "000000.tar")], shardshuffle=False))
    assert len(samples) == 150 and all("0.png" in s for s in samples)
