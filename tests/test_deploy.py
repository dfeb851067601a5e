"""Deployment profiles: the ``k8s`` pod spec of a GPU step, and the graph on a real PostgreSQL.

The Kubernetes side is checked without a cluster: the step's tags come from the real execution
plan of the ``k8s`` code location and the Job is rendered by dagster-k8s itself. PostgreSQL is a
real server (Debian ``postgresql``; ``.ci/run`` installs it) started here on 127.0.0.1 in a
temporary data directory, holding the instance storage configured by ``deploy/dagster.yaml``.
"""

from __future__ import annotations

import glob
import json
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from dagster import AssetKey, DagsterInstance

from mm_assets.deploy import (
    K8sProfile,
    build_definitions,
    executor_config,
    gpu_limit,
    gpu_ops,
    k8s_defs,
    preview_step_job,
)

REPO = Path(__file__).resolve().parents[1]
RECORDS_PER_SHARD = 3


def _step_tags(defs, step_key: str) -> dict:
    from dagster._core.execution.api import create_execution_plan

    plan = create_execution_plan(defs.resolve_implicit_global_asset_job_def())
    return dict(plan.get_step_by_key(step_key).tags)


def _pod(job):
    import kubernetes

    return kubernetes.client.ApiClient().sanitize_for_serialization(job)["spec"]["template"]


def test_gpu_step_pod_carries_the_gpu_limit():
    job_def = k8s_defs.resolve_implicit_global_asset_job_def()
    assert job_def.executor_def.name == "mm_assets_k8s"
    profile = K8sProfile()
    tags = _step_tags(k8s_defs, "embeddings")
    assert gpu_limit(tags) == "1"
    graph = k8s_defs.resolve_asset_graph()
    assert graph.get(AssetKey("embeddings")).pools == {"gpu"}  # the gpu concurrency pool

    pod = _pod(preview_step_job(profile, "embeddings", tags))
    [container] = pod["spec"]["containers"]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert container["resources"]["requests"] == {"cpu": "2", "memory": "8Gi"}
    assert pod["spec"]["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists",
                                           "effect": "NoSchedule"}]
    assert {"configMapRef": {"name": "mm-assets-env"}} in container["envFrom"]
    assert {"secretRef": {"name": "mm-assets-s3"}} in container["envFrom"]
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "step_worker"

    # A CPU step of the same run: requests, but no GPU limit and no GPU toleration.
    cpu_tags = _step_tags(k8s_defs, "image_hashes")
    cpu_pod = _pod(preview_step_job(profile, "image_hashes", cpu_tags))
    assert gpu_limit(cpu_tags) is None
    assert "limits" not in cpu_pod["spec"]["containers"][0]["resources"]
    assert not cpu_pod["spec"].get("tolerations")


def test_k8s_executor_config_is_valid_and_gpu_steps_follow_the_tags():
    from dagster._config import process_config
    from dagster_k8s import k8s_job_executor

    from mm_assets.definitions import ALL_ASSETS

    names = gpu_ops(ALL_ASSETS)
    assert "embeddings" in names and not {"raw_shards", "image_hashes"} & set(names)
    assert names == sorted(a.op.name for a in ALL_ASSETS if "dagster-k8s/config" in a.op.tags)
    cfg = executor_config(K8sProfile(namespace="curation", image="reg/mm:1", max_concurrent=4),
                          names)
    result = process_config(k8s_job_executor.config_schema.config_type, cfg)
    assert result.success, result.errors
    assert set(cfg["per_step_k8s_config"]) == set(names)
    with pytest.raises(ValueError, match="DNS label"):
        K8sProfile(namespace="Not_Valid")
    with pytest.raises(ValueError, match="quantity"):
        K8sProfile(step_memory="lots")


def test_local_stays_the_default_profile():
    from mm_assets.definitions import defs

    assert build_definitions() is defs
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == (
        "multi_or_in_process_executor")
    with pytest.raises(ValueError, match="unknown profile"):
        build_definitions("slurm")
    workspace = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["python_module"] == {"module_name": "mm_assets.deploy",
                                                          "attribute": "k8s_defs"}


def test_deploy_instance_config_validates():
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster_k8s import K8sRunLauncher

    cfg, _ = dagster_instance_config(str(REPO / "deploy"))
    assert cfg["storage"]["postgres"]["postgres_db"]["hostname"] == {"env": "DAGSTER_PG_HOST"}
    launcher = process_config(K8sRunLauncher.config_type(), cfg["run_launcher"]["config"])
    assert launcher.success, launcher.errors


# --- PostgreSQL ------------------------------------------------------------------------------


def _pg_bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                   key=lambda p: int(p.split("/")[4]))
    path = found[-1] if found else shutil.which("pg_ctl")
    return os.path.dirname(path) if path else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL server on 127.0.0.1 in a temporary data directory (trust auth).

    As root, initdb/pg_ctl run as the ``postgres`` user (PostgreSQL refuses root).
    """
    bindir = _pg_bindir()
    if bindir is None:
        reason = "PostgreSQL not installed (apt-get install -y postgresql)"
        if os.environ.get("CI"):
            pytest.fail(reason + "; CI must run this test (.ci/run installs it)")
        pytest.skip(reason)
    base = tempfile.mkdtemp(prefix="mm-assets-pg-")
    prefix: list[str] = []
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam("postgres")
        os.chown(base, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = os.path.join(base, "data"), _free_port()

    def pg(*args: str) -> None:
        subprocess.run(prefix + list(args), check=True, capture_output=True, timeout=60)

    try:
        pg(f"{bindir}/initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
           "--locale=C", "--no-sync")
        pg(f"{bindir}/pg_ctl", "-D", data, "-w", "-l", os.path.join(base, "server.log"), "-o",
           f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
           "-c synchronous_commit=off -c max_connections=60", "start")
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres")
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        conn.cursor().execute("CREATE DATABASE dagster")
        conn.close()
        yield {"host": "127.0.0.1", "port": port, "user": "postgres", "db": "dagster"}
    finally:
        subprocess.run(prefix + [f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       check=False, capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def _two_shards(root: Path) -> list[str]:
    """Six LLaVA records (images made with Pillow, two text-only) ingested as two shards."""
    from PIL import Image

    from mm_assets.core.ingest.plan import IngestConfig, plan_ingest
    from resources.storage import StorageResource

    drop = root.parent / "drop"
    (drop / "images").mkdir(parents=True)
    records = []
    for i in range(2 * RECORDS_PER_SHARD):
        rec = {"id": f"r{i}", "conversations": [
            {"from": "human", "value": f"Question {i}?"}, {"from": "gpt", "value": f"Answer {i}."}]}
        if i % 3:
            Image.new("RGB", (40 + i, 32), (40 * i, 90, 200 - 30 * i)).save(
                drop / "images" / f"{i}.png")
            rec["image"] = f"{i}.png"
            rec["conversations"][0]["value"] = "<image>\n" + rec["conversations"][0]["value"]
        records.append(rec)
    (drop / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return plan_ingest(StorageResource(root=str(root)).store(), [str(drop / "data.jsonl")],
                       str(drop / "images"), IngestConfig(shard_size=RECORDS_PER_SHARD))


def materialize_shard(home: str, root: str, shard: str, barrier) -> None:
    """Child process: raw_shards + image_hashes for one shard into the Postgres instance."""
    from dagster import materialize

    from mm_assets.definitions import ALL_ASSETS, default_resources
    from resources.storage import StorageResource

    with DagsterInstance.from_config(home) as instance:
        resources = {**default_resources(), "storage": StorageResource(root=root)}
        barrier.wait(timeout=120)  # both runs start together
        result = materialize(ALL_ASSETS, selection=["raw_shards", "image_hashes"],
                             partition_key=shard, instance=instance, resources=resources,
                             raise_on_error=False)
    sys.exit(0 if result.success else 1)


def test_two_concurrent_runs_on_postgres_instance_storage(postgres, tmp_path, monkeypatch):
    import psycopg2

    for key, value in {"HOST": postgres["host"], "PORT": str(postgres["port"]),
                       "USER": postgres["user"], "PASSWORD": "", "DB": postgres["db"]}.items():
        monkeypatch.setenv(f"DAGSTER_PG_{key}", value)
    home, root = tmp_path / "dagster_home", tmp_path / "root"
    home.mkdir()
    shutil.copy(REPO / "deploy" / "dagster.yaml", home / "dagster.yaml")
    shards = _two_shards(root)
    assert len(shards) == 2
    with DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        instance.add_dynamic_partitions("shards", shards)

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    procs = [ctx.Process(target=materialize_shard, args=(str(home), str(root), s, barrier))
             for s in shards]
    t0 = time.monotonic()
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=240)
    assert [p.exitcode for p in procs] == [0, 0], f"after {time.monotonic() - t0:.0f}s"

    with DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_run_records()
        assert sorted(r.dagster_run.tags["dagster/partition"] for r in records) == sorted(shards)
        assert {r.dagster_run.status.value for r in records} == {"SUCCESS"}
        starts = [r.start_time for r in records]
        ends = [r.end_time for r in records]
        assert max(starts) < min(ends), "the two runs did not overlap in time"
        for asset in ("raw_shards", "image_hashes"):
            assert instance.get_materialized_partitions(AssetKey(asset)) == set(shards)
        mats = instance.fetch_materializations(AssetKey("raw_shards"), limit=10).records
        metas = {r.partition_key: r.asset_materialization.metadata for r in mats}
        assert set(metas) == set(shards)
        for meta in metas.values():
            assert (meta["n_in"].value, meta["n_out"].value) == (RECORDS_PER_SHARD,) * 2
    with psycopg2.connect(host=postgres["host"], port=postgres["port"], user=postgres["user"],
                          dbname=postgres["db"]) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM runs WHERE status = 'SUCCESS'")
        assert cur.fetchone()[0] == 2
        cur.execute("SELECT count(*) FROM event_logs "
                    "WHERE dagster_event_type = 'ASSET_MATERIALIZATION'")
        assert cur.fetchone()[0] == 4
