"""Checks that can fail and block (issue 13): a stage forced to miscount fails its run, the CLI
exits non-zero naming the asset and partition, nothing downstream runs and the partition is not
committed; a batched run records each partition's own counts.

The miscounting stage is the real code with one function patched in the CLI's own process
(``python -c "<patch>; app()"``): the image hash table silently loses one sample's row, or the
exact-dedup grouping removes a key that was never read."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from mm_assets.core.commits import read_commit, read_commits
from mm_assets.core.storage import Store

N_SHARDS, PER_SHARD = 3, 7

LOSE_ONE_SAMPLE = """
import polars as pl
import mm_assets.assets.dedup as d
def lossy(fn):
    def wrapped(*a, **k):
        t = fn(*a, **k)  # the hash table loses one sample's row of shard 000000
        return None if t is None else t.filter(~pl.col("key").str.ends_with("-d3"))
    return wrapped
d.reuse_recorded, d.hash_samples = lossy(d.reuse_recorded), lossy(d.hash_samples)
"""

REMOVE_UNKNOWN_KEY = """
import polars as pl
import mm_assets.assets.dedup as d
orig = d.exact_groups
def wrong(hashes, policy):
    g = orig(hashes, policy)
    ghost = pl.DataFrame([{c: None for c in g.columns}], schema=g.schema).with_columns(
        pl.lit("never-read").alias("key"), pl.lit("remove").alias("action"))
    return pl.concat([g, ghost])
d.exact_groups = wrong
"""

READ_ONE_LESS = """
import mm_assets.assets.dedup as d
orig = d.read_shard
def short(store, asset, shard):
    return [s for s in orig(store, asset, shard) if not s.key.endswith("-d10")]
d.read_shard = short
"""


def _env(tmp: Path) -> dict:
    return {**os.environ, "MM_ASSETS_ROOT": str(tmp / "root"), "DAGSTER_HOME": str(tmp / "home"),
            "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def _cli(tmp: Path, *args: str, patch: str = "") -> subprocess.CompletedProcess:
    code = f"{patch}\nimport sys\nfrom mm_assets.cli import app\nsys.argv[0] = 'mm-assets'\napp()"
    return subprocess.run([sys.executable, "-c", code, *args], env=_env(tmp),
                          capture_output=True, text=True, timeout=600, check=False)


@pytest.fixture
def ingested(tmp_path):
    (tmp_path / "home").mkdir()
    src = tmp_path / "docs.jsonl"
    src.write_text("".join(json.dumps({"id": f"d{i}", "conversations": [
        {"from": "human", "value": f"What is {i} plus {i}?"},
        {"from": "gpt", "value": f"{i} plus {i} is {2 * i}."}]}) + "\n"
        for i in range(N_SHARDS * PER_SHARD)))
    r = _cli(tmp_path, "ingest", "--input", str(src), "--shard-size", str(PER_SHARD))
    assert r.returncode == 0, r.stderr
    return tmp_path


def test_a_per_shard_miscount_fails_the_run_naming_asset_and_partition(ingested):
    r = _cli(ingested, "run", "--select", "raw_shards,text_quality,image_hashes",
             patch=LOSE_ONE_SAMPLE)
    assert r.returncode == 1, r.stdout + r.stderr
    failed = [ln for ln in r.stderr.splitlines() if ln.startswith("FAILED")]
    assert len(failed) == 1, r.stderr
    assert "[000000]" in failed[0] and "image_hashes" in failed[0], failed
    assert "counts_reconcile" in failed[0], failed
    store = Store(str(ingested / "root"))
    assert read_commit(store, "image_hashes", "000000") is None  # never committed
    assert sorted(read_commits(store, "image_hashes")) == ["000001", "000002"]
    # the same command without the fault: exit 0, every shard committed with its own counts
    ok = _cli(ingested, "run", "--select", "image_hashes")
    assert ok.returncode == 0, ok.stderr
    recs = read_commits(store, "image_hashes")
    assert sorted(recs) == ["000000", "000001", "000002"]
    assert all(r["counts"]["n_in"] == r["counts"]["n_out"] == PER_SHARD for r in recs.values())


def test_a_shard_that_reads_fewer_samples_than_upstream_committed_fails(ingested):
    """Counts that reconcile within the stage but lose a sample between stages: the blocking
    cross-stage check (n_in == raw_shards' committed n_out) fails the run."""
    r = _cli(ingested, "run", "--select", "raw_shards,image_hashes", patch=READ_ONE_LESS)
    assert r.returncode == 1, r.stdout + r.stderr
    failed = [ln for ln in r.stderr.splitlines() if ln.startswith("FAILED")]
    assert len(failed) == 1 and "[000001]" in failed[0], r.stderr
    assert "input_matches_upstream" in failed[0], failed
    store = Store(str(ingested / "root"))
    assert read_commit(store, "image_hashes", "000001") is None  # not committed
    assert sorted(read_commits(store, "image_hashes")) == ["000000", "000002"]


def test_a_global_miscount_fails_and_blocks_downstream(ingested):
    r = _cli(ingested, "run", "--select", "raw_shards,image_hashes,exact_duplicates,curated",
             patch=REMOVE_UNKNOWN_KEY)
    assert r.returncode == 1, r.stdout + r.stderr
    failed = [ln for ln in r.stderr.splitlines() if ln.startswith("FAILED")]
    assert any("exact_duplicates[global]" in ln and "counts_reconcile" in ln
               for ln in failed), r.stderr
    store = Store(str(ingested / "root"))
    assert read_commit(store, "exact_duplicates", "all") is None
    assert not store.ls("curated", ".tar")  # nothing downstream ran


def test_a_batched_run_records_each_partitions_own_counts(tmp_path):
    """16 shards in one run (a BackfillPolicy batch): each partition's materialization carries
    that shard's counts, not the batch's, and each shard has its own commit record."""
    from mm_assets.assets.raw import raw_shards
    from mm_assets.core.ingest.plan import IngestConfig, plan_ingest
    from resources.storage import StorageResource

    store = Store(str(tmp_path / "root"))
    src = tmp_path / "docs.jsonl"
    sizes = [3 + i % 5 for i in range(16)]  # shards of different sizes
    lines, n = [], 0
    for size in sizes:
        lines += [json.dumps({"id": f"s{n + j}", "conversations": [
            {"from": "human", "value": "Hi?"}, {"from": "gpt", "value": f"Hello {n + j}."}]})
            for j in range(size)]
        n += size
    lines.insert(5, "{not json")  # one bad record in shard 000001 (shards cut by lines)
    src.write_text("\n".join(lines) + "\n")
    cut, shards, start = [], [], 0
    for size in [sizes[0], sizes[1] + 1, *sizes[2:]]:
        cut.append("\n".join(lines[start:start + size]) + "\n")
        start += size
    for i, part in enumerate(cut):
        (tmp_path / f"p{i:02d}.jsonl").write_text(part)
        shards += plan_ingest(store, [str(tmp_path / f"p{i:02d}.jsonl")], None,
                              IngestConfig(shard_size=100))
    assert len(shards) == 16
    instance = DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("shards", shards)
    res = materialize([raw_shards], instance=instance,
                      resources={"storage": StorageResource(root=str(store.root))}, tags={
        "dagster/asset_partition_range_start": shards[0],
        "dagster/asset_partition_range_end": shards[-1]})
    assert res.success
    mats = res.asset_materializations_for_node("raw_shards")
    assert len(mats) == 16
    got = {m.partition: (m.metadata["n_in"].value, m.metadata["n_out"].value,
                         m.metadata.get("n_quarantined").value) for m in mats}
    want = {s: (size + (s == shards[1]), size, int(s == shards[1]))
            for s, size in zip(shards, sizes, strict=True)}
    assert got == want
    assert all(m.metadata["run_shards"].value == 16 for m in mats)
    recs = read_commits(store, "raw_shards")
    assert {p: (r["counts"]["n_in"], r["counts"]["n_out"]) for p, r in recs.items()} == {
        s: w[:2] for s, w in want.items()}


def test_run_batch_puts_consecutive_shards_in_one_run_each_with_its_own_record(ingested):
    """`run --batch 2` over 3 shards: 2 runs ([000000..000001] and [000002]), every shard its
    own commit record and counts; `--missing` after one shard lost its record reruns only it."""
    r = _cli(ingested, "run", "--select", "raw_shards,image_hashes", "--batch", "2")
    assert r.returncode == 0, r.stderr[-2000:]
    runs = [ln.split("] ", 1)[1] for ln in r.stdout.splitlines() if ln.startswith("[")]
    assert runs == ["raw_shards+image_hashes [000000..000001: 2 shards]",
                    "raw_shards+image_hashes [000002]"], r.stdout
    store = Store(str(ingested / "root"))
    for asset in ("raw_shards", "image_hashes"):
        recs = read_commits(store, asset)
        assert sorted(recs) == ["000000", "000001", "000002"]
        assert all(rec["counts"]["n_in"] == PER_SHARD for rec in recs.values()), recs
    (ingested / "root" / "_commits" / "image_hashes" / "000001.json").unlink()
    again = _cli(ingested, "run", "--select", "raw_shards,image_hashes", "--batch", "2",
                 "--missing")
    assert again.returncode == 0, again.stderr[-2000:]
    runs = [ln.split("] ", 1)[1] for ln in again.stdout.splitlines() if ln.startswith("[")]
    assert runs == ["raw_shards+image_hashes [000001]"], again.stdout


def test_batches_are_consecutive_in_partition_order():
    from mm_assets.runner import _batches

    order = [f"{i:06d}" for i in range(10)]
    keys = ["000003", "000000", "000001", "000002", "000005", "000006", "000009"]
    assert _batches(keys, order, 3) == [("000000", "000001", "000002"), "000003",
                                        ("000005", "000006"), "000009"]
    assert _batches(keys, order, 1) == keys
    assert _batches(["000004", "000007"], order, 16) == ["000004", "000007"]


def test_run_on_a_mistyped_root_fails_before_any_run(ingested):
    """The instance knows the real root's shards; a mistyped --root used to launch a run per
    shard, each failing on a missing manifest, and `status` of the real root then showed them
    as failed. Now: exit 2 naming the root, no run recorded."""
    typo = ingested / "rooot"
    r = _cli(ingested, "run", "--select", "raw_shards", "--root", str(typo))
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "nothing ingested into" in r.stderr and "rooot" in r.stderr
    assert "check --root" in r.stderr
    inst = DagsterInstance.from_config(str(ingested / "home"))
    assert inst.get_runs() == []
