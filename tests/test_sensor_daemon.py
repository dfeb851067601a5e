"""The new-data sensor under a real ``dagster-daemon`` over a real S3-compatible server.

moto runs on 127.0.0.1; the storage root is ``s3://{bucket}/root`` and the watched prefix
``s3://{bucket}/drops`` (``MM_ASSETS_ROOT``, ``MM_ASSETS_S3_ENDPOINT``, ``MM_ASSETS_INPUT``, as
in production). ``dagster-daemon run -w workspace.yaml`` runs over a temporary SQLite
``DAGSTER_HOME``, the sensor ticking every 5 s (``MM_ASSETS_SENSOR_INTERVAL_S``). The test only
uploads files and reads the instance: it never evaluates the sensor, adds a partition or
launches a run itself. Runs use the default resources (CPU here), as the sensor launches them.
"""

import json
import logging
import os
import time

import pytest
from dagster import DagsterInstance, DagsterRunStatus, DefaultSensorStatus
from dagster._core.scheduler.instigation import InstigatorStatus, InstigatorType, TickStatus
from dagster_procs import DAGSTER_YAML, DagsterProcs, daemon_cmd, dagster_home
from s3_fixtures import jsonl_drop, png_bytes, s3_bucket, s3_server  # noqa: F401

from mm_assets.definitions import PER_SHARD
from sensors.new_data import new_data_sensor

# Each of the 2 per-shard runs loads EfficientNet-Lite0 (onnxruntime), MiniLM and SmolLM2-135M on
# the CPU, in one process per run (MM_ASSETS_EXECUTOR=in_process below): ~1.5 min for the whole
# test on 2 cores (a third run per shard cost ~50 s more); the limit is generous for loaded
# machines.
TIMEOUT_S = int(os.environ.get("MM_TEST_SENSOR_DAEMON_TIMEOUT_S", "900"))
# One run at a time: three runs side by side on 2 cores only compete (measured: same wall time,
# ~1.7x the CPU time).
YAML = DAGSTER_YAML.replace("dequeue_interval_seconds: 1",
                            "dequeue_interval_seconds: 1\n    max_concurrent_runs: 1")
PER_SHARD_KEYS = [a.key for a in PER_SHARD]


# Two shard files (one shard each) in two folders and an image the first one refers to. (A third,
# text-only file beside alpha only added one more identical per-shard run; several drops per
# tick and per folder are covered in process by tests/test_sensor.py, three drops there.)
DROPS = {"d1/img/red.png": png_bytes(),
         "d1/alpha.jsonl": jsonl_drop("alpha", 3, image="img/red.png"),
         "d2/gamma.jsonl": jsonl_drop("gamma", 4)}


class Watch:
    """Reads the daemon's instance; fails at once (with the logs) on a failed run or tick."""

    def __init__(self, instance: DagsterInstance, procs: DagsterProcs):
        self.instance, self.procs = instance, procs

    def sensor_state(self):
        states = [s for s in self.instance.all_instigator_state(
            instigator_type=InstigatorType.SENSOR) if s.instigator_name == new_data_sensor.name]
        return states[0] if states else None

    def ticks(self) -> list:
        state = self.sensor_state()
        if state is None:
            return []
        return list(self.instance.get_ticks(state.instigator_origin_id, state.selector_id))

    def shards(self) -> list[str]:
        return sorted(self.instance.get_dynamic_partitions("shards"))

    def diagnostics(self) -> str:
        lines = [f"shards: {self.shards()}"]
        for run in self.instance.get_runs():
            lines.append(f"run {run.run_id[:8]} {run.tags.get('dagster/partition')} "
                         f"{run.status.value}")
            for rec in self.instance.all_logs(run.run_id):
                ev = rec.dagster_event
                if ev is not None and ev.is_failure and getattr(
                        ev.event_specific_data, "error", None) is not None:
                    lines.append(f"  {ev.step_key}: {ev.event_specific_data.error.message}")
        for t in self.ticks()[:5]:
            lines.append(f"tick {t.status.value} runs={len(t.run_ids)} error={t.error}")
        return "\n".join(lines) + "\n" + self.procs.tails()

    def check(self) -> None:
        self.procs.check_alive()
        bad = [r for r in self.instance.get_runs()
               if r.status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)]
        failed_ticks = [t for t in self.ticks() if t.status == TickStatus.FAILURE]
        if bad or failed_ticks:
            pytest.fail(f"{len(bad)} failed run(s), {len(failed_ticks)} failed tick(s)\n"
                        f"{self.diagnostics()}")

    def until(self, what: str, cond, timeout: float = TIMEOUT_S):
        t0 = time.time()
        while True:
            self.check()
            if value := cond():
                return value
            if time.time() - t0 > timeout:
                pytest.fail(f"not reached in {timeout} s: {what}\n{self.diagnostics()}")
            time.sleep(1)


@pytest.fixture
def daemon(s3_server, s3_bucket, tmp_path):  # noqa: F811
    werkzeug = logging.getLogger("werkzeug")  # moto logs every request
    level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)
    home = dagster_home(tmp_path / "home", YAML)
    env = {k: v for k, v in os.environ.items()
           if k not in ("MM_ASSETS_REQUIRE_DONE", "MM_ASSETS_SHARD_SIZE")}
    env.update(DAGSTER_HOME=str(home), MM_ASSETS_ROOT=f"s3://{s3_bucket}/root",
               MM_ASSETS_S3_ENDPOINT=s3_server.endpoint, MM_ASSETS_INPUT=f"s3://{s3_bucket}/drops",
               MM_ASSETS_SENSOR_INTERVAL_S="5", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
               MM_ASSETS_EXECUTOR="in_process",  # steps in the run process: torch loads once
               OMP_NUM_THREADS="1")  # runs share 2 cores: no spinning threads
    instance = DagsterInstance.from_config(str(home))
    try:
        with DagsterProcs(env, tmp_path) as procs:
            procs.start("daemon", daemon_cmd())
            yield Watch(instance, procs), s3_server, s3_bucket
    finally:
        instance.dispose()
        werkzeug.setLevel(level)


def _upload(server, bucket: str) -> None:
    client = server.client()
    for rel, data in DROPS.items():
        client.put_object(Bucket=bucket, Key=f"drops/{rel}", Body=data)


def test_dropped_files_become_partitions_and_runs_under_the_daemon(daemon):
    watch, server, bucket = daemon
    t0 = time.time()
    assert new_data_sensor.default_status == DefaultSensorStatus.RUNNING
    # The daemon ticks the sensor without anyone starting it.
    state = watch.until("a first sensor tick", lambda: watch.ticks() and watch.sensor_state(),
                        timeout=300)
    assert state.status in (InstigatorStatus.DECLARED_IN_CODE, InstigatorStatus.RUNNING)
    t_ready = time.time()

    _upload(server, bucket)
    shards = watch.until("2 partitions", lambda: len(watch.shards()) == 2 and watch.shards(),
                         timeout=300)  # a tick requests the ingest run; the next registers
    assert shards == ["000000", "000001"]

    def all_materialized():
        return all(watch.instance.get_materialized_partitions(k) == set(shards)
                   for k in PER_SHARD_KEYS)

    watch.until("every per-shard asset materialized for the 2 shards", all_materialized)
    t_done = time.time()
    every = watch.until("3 finished runs", lambda: (
        runs := watch.instance.get_runs()) and all(r.is_finished for r in runs) and runs)
    assert len(every) == 3 and {r.status for r in every} == {DagsterRunStatus.SUCCESS}
    [ingest] = [r for r in every if r.job_name == "ingest_job"]  # the tick itself wrote nothing
    assert ingest.tags["dagster/sensor_name"] == new_data_sensor.name
    runs = [r for r in every if r.job_name == "per_shard_job"]
    assert len(runs) == 2
    assert sorted(r.tags["dagster/partition"] for r in runs) == shards
    assert sorted(r.tags["dagster/run_key"] for r in runs) == [f"shard-{s}" for s in shards]
    assert {r.tags["dagster/sensor_name"] for r in runs} == {new_data_sensor.name}
    for key in PER_SHARD_KEYS:  # one materialization per shard, not more
        assert len(watch.instance.fetch_materializations(key, limit=10).records) == 2, key
    keys = set(server.keys(bucket, "root/"))
    for s in shards:
        assert {f"root/raw_shards/{s}.tar", f"root/image_hashes/{s}.parquet",
                f"root/embeddings/{s}/text.npy", f"root/ppl_scores/{s}.parquet"} <= keys, s
    sources = set()
    for s in shards:
        body = server.client().get_object(Bucket=bucket, Key=f"root/inputs/{s}.jsonl")["Body"]
        sources.add(json.loads(body.read().decode().splitlines()[0])["input"].rsplit("/", 1)[-1])
    assert sources == {"alpha.jsonl", "gamma.jsonl"}
    state_json = server.client().get_object(
        Bucket=bucket, Key="root/inputs/_state.json")["Body"].read()

    # The same files again, same bytes: at least two complete ticks later, nothing new.
    _upload(server, bucket)
    t_again = time.time()
    ticks_after = watch.until("2 sensor ticks after the re-upload", lambda: (
        done := [t for t in watch.ticks() if t.timestamp > t_again
                 and t.status != TickStatus.STARTED]) and len(done) >= 2 and done, timeout=180)
    assert all(t.run_ids == [] for t in ticks_after)
    watch.check()
    assert watch.shards() == shards
    assert len(watch.instance.get_runs()) == 3
    assert server.client().get_object(
        Bucket=bucket, Key="root/inputs/_state.json")["Body"].read() == state_json
    print(f"\ndaemon up and ticking {t_ready - t0:.0f} s; drop -> all per-shard assets "
          f"materialized {t_done - t_ready:.0f} s; re-upload check {time.time() - t_again:.0f} s")
