"""The new-data sensor against a real S3-compatible server (moto on 127.0.0.1).

Ticks are real sensor evaluations (``build_sensor_context`` over a real instance); what the
daemon does with a tick's result is done here too: partitions are added, then the requested
runs are materialized for their shards.
"""

import json

import pytest
from dagster import AssetKey, build_sensor_context, instance_for_test
from s3_fixtures import jsonl_drop, png_bytes, s3_bucket, s3_server  # noqa: F401

from mm_assets.core.ingest.plan import read_manifest
from mm_assets.definitions import PER_SHARD
from mm_assets.runner import run_graph
from resources.models import EmbedderResource, LanguageModelResource
from resources.storage import StorageResource
from sensors.new_data import DropSettings, new_data_sensor, partition_batches, select_ready


class Daemon:
    """Evaluates the sensor like the daemon: cursor kept, partition requests applied."""

    def __init__(self, instance, storage):
        self.instance, self.storage, self.cursor = instance, storage, None

    def tick(self):
        ctx = build_sensor_context(instance=self.instance, cursor=self.cursor,
                                   resources={"storage": self.storage})
        result = new_data_sensor(ctx)
        for req in result.dynamic_partitions_requests:
            self.instance.add_dynamic_partitions(req.partitions_def_name, req.partition_keys)
        self.cursor = result.cursor
        return result


@pytest.fixture
def drop(s3_server, s3_bucket, monkeypatch):  # noqa: F811
    for var in ("MM_ASSETS_INPUT", "MM_ASSETS_REQUIRE_DONE", "MM_ASSETS_SHARD_SIZE",
                "MM_ASSETS_SENSOR_INLINE_BYTES"):
        monkeypatch.delenv(var, raising=False)
    storage = StorageResource(root=f"s3://{s3_bucket}/root", endpoint_url=s3_server.endpoint)
    store = storage.store()
    with instance_for_test() as instance:
        yield {"store": store, "storage": storage, "daemon": Daemon(instance, storage),
               "instance": instance, "server": s3_server, "bucket": s3_bucket,
               "put": lambda rel, data: store.write_bytes(f"incoming/{rel}", data)}


def _drop_three(put) -> None:
    put("d1/img/red.png", png_bytes())
    put("d1/alpha.jsonl", jsonl_drop("alpha", 3, image="img/red.png"))
    put("d1/beta.jsonl", jsonl_drop("beta", 2))
    put("d2/gamma.jsonl", jsonl_drop("gamma", 4))


def test_three_drops_become_partitions_and_materialized_shards(drop):
    _drop_three(drop["put"])
    daemon, instance = drop["daemon"], drop["instance"]
    first = daemon.tick()  # sizes recorded; nothing is taken before it is seen unchanged
    assert first.run_requests == [] and instance.get_dynamic_partitions("shards") == []
    second = daemon.tick()
    shards = instance.get_dynamic_partitions("shards")
    assert shards == ["000000", "000001", "000002"]
    assert [r.partition_key for r in second.run_requests] == shards
    assert [r.run_key for r in second.run_requests] == [f"shard-{s}" for s in shards]
    sources = sorted(read_manifest(drop["store"], s)[0]["input"].rsplit("/", 1)[-1]
                     for s in shards)
    assert sources == ["alpha.jsonl", "beta.jsonl", "gamma.jsonl"]
    assert sorted(json.loads(daemon.cursor)["taken"]) == [
        f"{drop['bucket']}/root/incoming/{p}" for p in ("d1/alpha.jsonl", "d1/beta.jsonl",
                                                         "d2/gamma.jsonl")]

    resources = {"storage": drop["storage"], "lm": LanguageModelResource(device="cpu"),
                 "embedder": EmbedderResource(device="cpu", batch_size=8)}
    per_shard = [a.key.to_user_string() for a in PER_SHARD]
    summary = run_graph(instance, resources, select=per_shard,
                        shards=[r.partition_key for r in second.run_requests])
    assert summary.failed == []
    assert summary.counts["raw_shards"]["n_out"] == 3 + 2 + 4
    for asset in per_shard:
        assert instance.get_materialized_partitions(AssetKey(asset)) == set(shards), asset
    keys = set(drop["server"].keys(drop["bucket"], "root/"))
    assert {f"root/raw_shards/{s}.tar" for s in shards} <= keys
    assert {f"root/ppl_scores/{s}.parquet" for s in shards} <= keys


def test_dropping_the_same_files_again_changes_nothing(drop):
    _drop_three(drop["put"])
    daemon, instance = drop["daemon"], drop["instance"]
    daemon.tick()
    assert len(daemon.tick().run_requests) == 3
    state = drop["store"].read_bytes("inputs/_state.json")
    _drop_three(drop["put"])  # re-uploaded, same bytes
    for _ in range(2):
        assert daemon.tick().run_requests == []
    daemon.cursor = None  # a restarted sensor with a lost cursor
    for _ in range(2):
        assert daemon.tick().run_requests == []
    assert len(instance.get_dynamic_partitions("shards")) == 3
    assert drop["store"].read_bytes("inputs/_state.json") == state


def test_a_file_still_growing_is_not_taken(drop):
    daemon, put = drop["daemon"], drop["put"]
    full = jsonl_drop("delta", 6)
    put("big.jsonl", full[: len(full) // 2])
    daemon.tick()
    put("big.jsonl", full)  # grew between ticks
    assert daemon.tick().run_requests == []
    [req] = daemon.tick().run_requests
    _, records = read_manifest(drop["store"], req.partition_key)
    assert len(records) == 6 and {r.reason for r in records} == {None}


def test_require_done_waits_for_the_marker(drop, monkeypatch):
    monkeypatch.setenv("MM_ASSETS_REQUIRE_DONE", "1")
    daemon, put = drop["daemon"], drop["put"]
    put("eps.jsonl", jsonl_drop("eps", 2))
    for _ in range(3):
        assert daemon.tick().run_requests == []
    put("eps.jsonl.done", b"")
    [req] = daemon.tick().run_requests
    assert drop["instance"].get_dynamic_partitions("shards") == [req.partition_key]


def test_watched_prefix_outside_the_root(drop, monkeypatch):
    store = drop["store"]
    store.fs.pipe(f"{drop['bucket']}/landing/x.jsonl", jsonl_drop("zeta", 2))
    monkeypatch.setenv("MM_ASSETS_INPUT", f"s3://{drop['bucket']}/landing")
    drop["daemon"].tick()
    [req] = drop["daemon"].tick().run_requests
    assert read_manifest(store, req.partition_key)[0]["input"] == (
        f"s3://{drop['bucket']}/landing/x.jsonl")


def test_partitions_are_added_in_batches_of_at_most_10k():
    keys = [f"{i:06d}" for i in range(25_001)]
    reqs = partition_batches(keys)
    assert [len(r.partition_keys) for r in reqs] == [10_000, 10_000, 5_001]
    assert [k for r in reqs for k in r.partition_keys] == keys


def test_work_per_tick_is_capped(tmp_path):
    files = {str(tmp_path / f"{c}.jsonl"): [100, "v1"] for c in "abc"}
    settings = DropSettings(prefix=str(tmp_path), max_files=2)
    cursor = {"seen": {p: [100, "v1"] for p in files}}
    taken, cursor = select_ready(files, cursor, settings)
    assert taken == sorted(files)[:2]
    taken, cursor = select_ready(files, cursor, settings)
    assert taken == sorted(files)[2:]
    assert select_ready(files, cursor, settings)[0] == []
    small = DropSettings(prefix=str(tmp_path), max_bytes=150)
    assert len(select_ready(files, {"seen": {p: [100, "v1"] for p in files}}, small)[0]) == 1


def test_a_changed_file_is_taken_again_and_deleted_files_leave_the_cursor(tmp_path):
    settings = DropSettings(prefix=str(tmp_path))
    a, b = str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl")
    cursor = {"seen": {a: [10, "v1"], b: [5, "v1"]}}
    taken, cursor = select_ready({a: [10, "v1"], b: [5, "v1"]}, cursor, settings)
    assert taken == [a, b] and cursor["taken"] == {a: "v1", b: "v1"}
    taken, cursor = select_ready({a: [12, "v2"]}, cursor, settings)  # a changed, b deleted
    assert taken == [] and cursor == {"seen": {a: [12, "v2"]}, "taken": {a: "v1"}}
    assert select_ready({a: [12, "v2"]}, cursor, settings)[0] == [a]


def test_large_drops_are_ingested_in_a_run_not_in_the_tick(drop, monkeypatch):
    from dagster import DagsterRunStatus

    from mm_assets.jobs import ingest_job

    monkeypatch.setenv("MM_ASSETS_SENSOR_INLINE_BYTES", "300")  # alpha (3 rows) is larger
    _drop_three(drop["put"])
    daemon, instance = drop["daemon"], drop["instance"]
    daemon.tick()
    second = daemon.tick()
    ingest = [r for r in second.run_requests if r.job_name == "ingest_job"]
    [req] = ingest
    urls = req.run_config["ops"]["ingest_drops"]["config"]["urls"]
    assert [u.rsplit("/", 1)[-1] for u in urls] == ["alpha.jsonl", "gamma.jsonl"]
    small = [r.partition_key for r in second.run_requests if r.job_name == "per_shard_job"]
    assert len(small) == 1  # beta (2 rows, < 300 bytes) was ingested inside the tick
    # while the ingest run is queued, a new drop is not taken (ingest state has one writer)
    run = instance.create_run_for_job(ingest_job, run_config=req.run_config)
    assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.NOT_STARTED
    drop["put"]("d3/late.jsonl", jsonl_drop("late", 2))
    daemon.tick()
    assert daemon.tick().run_requests == [] and "late" not in daemon.cursor
    instance.delete_run(run.run_id)
    result = ingest_job.execute_in_process(run_config=req.run_config, instance=instance,
                                           resources={"storage": drop["storage"]})
    assert result.success
    third = daemon.tick()  # the ingest run's shards become partitions and per-shard runs
    assert sorted(r.partition_key for r in third.run_requests) == sorted(
        set(instance.get_dynamic_partitions("shards")) - set(small))
    assert len(instance.get_dynamic_partitions("shards")) == 3  # alpha, beta, gamma
    daemon.tick()  # late.jsonl, seen unchanged since the third tick, is taken inline now
    assert len(instance.get_dynamic_partitions("shards")) == 4
