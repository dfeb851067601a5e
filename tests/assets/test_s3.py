"""The whole graph with its storage root on a real S3-compatible server (moto, 127.0.0.1).

One input (LLaMA-Factory's mllm_demo.json and its images) is uploaded to the bucket and
ingested by URL; the other (lmms-finetune, with a text-only record) stays on local disk. Every
asset then reads and writes ``s3://bucket/root`` only.
"""

import hashlib
import json
from collections import defaultdict

import polars as pl
import pytest
import webdataset as wds
from dagster import AssetKey, EnvVar, instance_for_test
from dagster._serdes import serialize_value
from s3_fixtures import s3_bucket, s3_server  # noqa: F401

from mm_assets.core.ingest.plan import IngestConfig, plan_ingest
from mm_assets.core.mix.registry import shipped
from mm_assets.runner import ORDER, run_graph
from resources.models import EmbedderResource, LanguageModelResource
from resources.storage import StorageResource

KEY_ID, SECRET = "AKIAMMASSETSNEVERLOG", "s3cr3t-mm-assets-never-in-logs"
PER_SHARD_OUTPUTS = ["raw_shards/{s}.tar", "image_hashes/{s}.parquet", "ppl_scores/{s}.parquet",
                     "curated/{s}.tar", "curated/{s}.decisions.parquet",
                     "quarantine/raw_shards/{s}.parquet"]
GLOBAL_OUTPUTS = ["exact_duplicates/groups.parquet", "clusters/assignments.parquet",
                  "semdedup/scores.parquet", "ppl_deciles/deciles.parquet", "merged/00000.tar",
                  "rephrased/00000.tar"]


@pytest.fixture(scope="module")
def s3_graph(s3_server, shared, tmp_path_factory):  # noqa: F811
    import os

    bucket = "mm-graph"
    s3_server.client().create_bucket(Bucket=bucket)
    os.environ["MM_TEST_S3_KEY_ID"], os.environ["MM_TEST_S3_SECRET"] = KEY_ID, SECRET
    storage = StorageResource(root=f"s3://{bucket}/root", endpoint_url=s3_server.endpoint,
                              aws_access_key_id=EnvVar("MM_TEST_S3_KEY_ID"),
                              aws_secret_access_key=EnvVar("MM_TEST_S3_SECRET"))
    store = storage.store()
    lf = shared / "llava" / "LLaMA-Factory" / "data"
    store.fs.put(str(lf / "mllm_demo.json"), f"{bucket}/src/mllm_demo.json")
    store.fs.put(str(lf / "mllm_demo_data") + "/", f"{bucket}/src/mllm_demo_data/",
                 recursive=True)
    ex = shared / "llava" / "lmms-finetune" / "example_data"
    cfg = IngestConfig(shard_size=8)  # one shard per input: few runs, fast
    shards = plan_ingest(store, [f"s3://{bucket}/src/mllm_demo.json"], None, cfg)
    shards += plan_ingest(store, [str(ex / "single_image_has_text_only.json")],
                          str(ex / "images"), cfg)
    resources = {"storage": storage, "embedder": EmbedderResource(device="cpu", batch_size=8),
                 "lm": LanguageModelResource(device="cpu")}
    run_config = {"ops": {"rephrased": {"config": {"max_samples": 1, "max_new_tokens": 16}},
                          "clusters": {"config": {"k": 2}},
                          "semdedup": {"config": {"epsilon": 0.01}}}}
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", shards)
        summary = run_graph(instance, resources, run_config=run_config,
                            recipes=sorted(shipped()),  # examples: named explicitly
                            batch=4)  # partition-range runs: worker processes read/write S3
        yield {"store": store, "bucket": bucket, "summary": summary, "shards": shards,
               "instance": instance, "server": s3_server, "lf": lf, "ex": ex,
               "resources": resources, "shared": shared}
    import fsspec

    fsspec.config.conf.pop("s3", None)  # endpoint + credentials registered by store()


def test_every_stage_succeeds_and_counts_reconcile(s3_graph):
    s = s3_graph["summary"]
    assert s.failed == []
    for asset in ORDER:
        c = s.counts[asset]
        assert c["n_in"] == c["n_out"] + c["n_removed"] + c["n_quarantined"], asset
    assert s.counts["raw_shards"]["n_in"] == 6 + 4
    assert s.counts["raw_shards"]["n_quarantined"] == 0
    assert len(s3_graph["shards"]) == 2


def test_every_output_is_an_object_in_the_bucket(s3_graph):
    keys = set(s3_graph["server"].keys(s3_graph["bucket"], "root/"))
    for shard in s3_graph["shards"]:
        for pattern in PER_SHARD_OUTPUTS:
            assert "root/" + pattern.format(s=shard) in keys
        assert any(k.startswith(f"root/embeddings/{shard}/") for k in keys)
    for rel in GLOBAL_OUTPUTS:
        assert "root/" + rel in keys
    for recipe in ("curated_all", "text_mm_1to3", "rephrased_mid_ppl"):
        assert f"root/mixtures/{recipe}/manifest.json" in keys
    assert not [k for k in keys if ".tmp-" in k]  # atomic writes leave no temporary objects


def test_materializations_point_at_s3(s3_graph):
    instance, prefix = s3_graph["instance"], f"s3://{s3_graph['bucket']}/root/"
    for asset in ("raw_shards", "curated"):
        records = instance.fetch_materializations(AssetKey(asset), limit=100).records
        paths = sorted(r.asset_materialization.metadata["path"].value for r in records)
        assert paths == [f"{prefix}{asset}/{s}.tar" for s in s3_graph["shards"]]
    [mix] = instance.fetch_materializations(AssetKey("mixtures"), limit=1).records
    assert mix.asset_materialization.metadata["manifest"].value.startswith(prefix + "mixtures/")


def _image_groups(store, lf, ex):
    """Records grouped by the sha256 of their image files, computed independently."""
    groups = defaultdict(list)
    inputs = [(lf / "mllm_demo.json", lf), (ex / "single_image_has_text_only.json", ex / "images")]
    for f, root in inputs:
        for i, r in enumerate(json.loads(f.read_text())):
            imgs = r.get("image", r.get("images"))
            if not imgs:
                continue
            imgs = [imgs] if isinstance(imgs, str) else imgs
            groups["|".join(hashlib.sha256((root / p).read_bytes()).hexdigest()
                            for p in imgs)].append(i)
    return sorted(len(v) for v in groups.values() if len(v) > 1)


def test_duplicates_found_across_s3_and_local_inputs(s3_graph):
    store = s3_graph["store"]
    groups = store.read_parquet("exact_duplicates/groups.parquet").filter(
        pl.col("kind") == "image")
    sizes = sorted(g.height for _, g in groups.group_by("group_id"))
    assert sizes == _image_groups(store, s3_graph["lf"], s3_graph["ex"]) == [2, 2, 2]


def test_mixture_shards_stream_from_s3_with_webdataset(s3_graph):
    store = s3_graph["store"]
    manifest = store.read_json("mixtures/curated_all/manifest.json")
    store.enable_webdataset()
    urls = [store.url(p) for p in manifest["shards"]]
    assert urls and all(u.startswith("s3://") for u in urls)
    samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False))
    assert len(samples) == sum(manifest["counts"].values()) > 0
    for sample in samples:
        meta = json.loads(sample["json"])
        assert meta["key"] == sample["__key__"] and meta["conversations"]
        assert [n for n in meta["images"] if n not in sample] == []


def test_a_mixture_with_an_external_s3_webdataset_prefix(s3_graph):
    """Two sources, one of them a WebDataset prefix in the bucket; byte-limited shards on S3."""
    store, bucket = s3_graph["store"], s3_graph["bucket"]
    tgz = s3_graph["shared"] / "wds" / "webdataset" / "testdata" / "testgz.tar"
    store.fs.put(str(tgz), f"{bucket}/ext/a.tar")
    store.write_bytes("recipes/s3_web.yaml", (
        f"name: s3_web\nsources: [curated, {{name: web, wds: 's3://{bucket}/ext/'}}]\n"
        "ratio: {curated: 1, web: 1}\nseed: 3\nshard_size: 20KB\n").encode())
    s3_graph["instance"].add_dynamic_partitions("recipes", ["s3_web"])
    summary = run_graph(s3_graph["instance"], s3_graph["resources"], select=["mixtures"],
                        recipes=["s3_web"])
    assert summary.failed == []
    m = store.read_json("mixtures/s3_web/manifest.json")
    n = m["per_stratum"]["curated"]
    assert n > 0 and m["per_stratum"] == {"curated": n, "web": n}
    assert m["source"]["per_source"]["web"]["samples"] == 1000
    assert m["source"]["per_source"]["web"]["wds"] == f"s3://{bucket}/ext/"
    from mm_assets.core.shards import read_samples

    for p in m["shards"]:  # ≤ 20 KB, or a single sample larger than that
        with store.open_read(p) as f:
            count = sum(1 for _ in read_samples(f))
        assert store.fs.size(store.path(p)) <= 20_000 or count == 1
    assert len(m["shards"]) > 1
    assert m["shards"][0].startswith("mixtures/s3_web/")


def test_credentials_never_reach_logs_metadata_or_run_storage(s3_graph):
    instance = s3_graph["instance"]
    blobs = []
    for run in instance.get_runs():
        blobs.append(serialize_value(run))
        blobs.extend(serialize_value(e) for e in instance.all_logs(run.run_id))
        blobs.append(serialize_value(instance.get_job_snapshot(run.job_snapshot_id)))
    text = "\n".join(blobs)
    assert len(blobs) > 50 and "s3://" in text
    assert KEY_ID not in text and SECRET not in text
    assert "MM_TEST_S3_SECRET" in text  # only the variable's name is recorded
