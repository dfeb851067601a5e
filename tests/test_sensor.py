"""The new-data sensor against a real S3-compatible server (moto on 127.0.0.1).

Ticks are real sensor evaluations (``build_sensor_context`` over a real instance); what the
daemon does with a tick's result is done here too: partitions are added, requested ingest runs
are executed, then the requested per-shard runs are materialized for their shards.
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

    def run_ingests(self, result) -> None:
        """Execute the ``ingest_job`` runs a tick requested, as the daemon would launch them."""
        from mm_assets.jobs import ingest_job

        for req in result.run_requests:
            if req.job_name == ingest_job.name:
                assert ingest_job.execute_in_process(
                    run_config=req.run_config, instance=self.instance,
                    resources={"storage": self.storage}).success

    def tick_and_ingest(self):
        """A tick that takes files, their ingest run, and the next tick (its shard runs)."""
        self.run_ingests(self.tick())
        return self.tick()


def _written(store) -> set[str]:
    """Every object under the root except the watched ``incoming/`` prefix."""
    return {p for p in store.fs.find(store.root) if "/incoming/" not in p}


@pytest.fixture
def drop(s3_server, s3_bucket, monkeypatch):  # noqa: F811
    for var in ("MM_ASSETS_INPUT", "MM_ASSETS_REQUIRE_DONE", "MM_ASSETS_SHARD_SIZE"):
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
    before = _written(drop["store"])
    taking = daemon.tick()  # takes the three files: requests one ingest run, writes nothing
    [ingest] = taking.run_requests
    assert ingest.job_name == "ingest_job" and _written(drop["store"]) == before
    assert instance.get_dynamic_partitions("shards") == []
    daemon.run_ingests(taking)  # ingest happens inside the run
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
    taking = daemon.tick()
    daemon.run_ingests(taking)
    assert len(daemon.tick().run_requests) == 3
    state = drop["store"].read_bytes("inputs/_state.json")
    _drop_three(drop["put"])  # re-uploaded, same bytes
    for _ in range(2):
        assert daemon.tick().run_requests == []
    daemon.cursor = None  # a restarted sensor with a lost cursor
    assert daemon.tick().run_requests == []
    again = daemon.tick()  # takes the files again: the same run key (the daemon skips it) ...
    assert [r.run_key for r in again.run_requests] == [taking.run_requests[0].run_key]
    daemon.run_ingests(again)  # ... and even when run, ingest skips content it has seen
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
    [req] = daemon.tick_and_ingest().run_requests
    _, records = read_manifest(drop["store"], req.partition_key)
    assert len(records) == 6 and {r.reason for r in records} == {None}


def test_require_done_waits_for_the_marker(drop, monkeypatch):
    monkeypatch.setenv("MM_ASSETS_REQUIRE_DONE", "1")
    daemon, put = drop["daemon"], drop["put"]
    put("eps.jsonl", jsonl_drop("eps", 2))
    for _ in range(3):
        assert daemon.tick().run_requests == []
    put("eps.jsonl.done", b"")
    [req] = daemon.tick_and_ingest().run_requests
    assert drop["instance"].get_dynamic_partitions("shards") == [req.partition_key]


def test_watched_prefix_outside_the_root(drop, monkeypatch):
    store = drop["store"]
    store.fs.pipe(f"{drop['bucket']}/landing/x.jsonl", jsonl_drop("zeta", 2))
    monkeypatch.setenv("MM_ASSETS_INPUT", f"s3://{drop['bucket']}/landing")
    drop["daemon"].tick()
    [req] = drop["daemon"].tick_and_ingest().run_requests
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


def test_no_file_is_taken_while_an_ingest_run_is_queued(drop):
    from dagster import DagsterRunStatus

    from mm_assets.jobs import ingest_job

    _drop_three(drop["put"])
    daemon, instance = drop["daemon"], drop["instance"]
    daemon.tick()
    [req] = daemon.tick().run_requests
    urls = req.run_config["ops"]["ingest_drops"]["config"]["urls"]
    assert [u.rsplit("/", 1)[-1] for u in urls] == ["alpha.jsonl", "beta.jsonl", "gamma.jsonl"]
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
    assert len(third.run_requests) == 3 and len(instance.get_dynamic_partitions("shards")) == 3
    daemon.run_ingests(daemon.tick())  # late.jsonl, seen unchanged since the third tick
    assert len(daemon.tick().run_requests) == 1
    assert len(instance.get_dynamic_partitions("shards")) == 4


def test_an_unreadable_drop_fails_its_run_naming_it_and_the_others_are_ingested(drop):
    put, daemon = drop["put"], drop["daemon"]
    put("ok.jsonl", jsonl_drop("ok", 2))
    put("notes.json", b'{"just": "one object without conversations"')
    daemon.tick()
    [req] = daemon.tick().run_requests
    from mm_assets.jobs import ingest_job

    result = ingest_job.execute_in_process(run_config=req.run_config, instance=drop["instance"],
                                           resources={"storage": drop["storage"]},
                                           raise_on_error=False)
    assert not result.success
    err = result.get_step_failure_events()[0].step_failure_data.error
    while err.cause is not None:
        err = err.cause
    assert "1 of 2 input(s) not ingested" in err.message and "notes.json" in err.message
    assert len(daemon.tick().run_requests) == 1  # ok.jsonl's shard
