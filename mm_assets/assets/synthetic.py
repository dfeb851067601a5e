"""synthetic (one partition per generator spec): rendered samples with exact answers."""

from __future__ import annotations

from dagster import DagsterInstance, MaterializeResult, MetadataValue, asset

from mm_assets.assets._common import Timer, global_result, write_quarantine
from mm_assets.checks import counts_spec
from mm_assets.core import layout
from mm_assets.core.commits import uncommit
from mm_assets.core.synth.generate import build_spec
from mm_assets.core.synth.spec import load_spec, root_specs
from mm_assets.partitions import synthetic_specs
from resources.storage import StorageResource

ASSET = "synthetic"


def register_specs(instance: DagsterInstance, storage: StorageResource,
                   names: list[str] | None = None) -> list[str]:
    """Add ``names`` (default: the root's own specs, ``{root}/synthetic/*.yaml``) as
    ``synthetic`` partitions; returns them. Shipped examples are registered only when named
    (as recipes are, :func:`mm_assets.runner.register_recipes`)."""
    names = sorted(root_specs(storage.store()) if names is None else names)
    have = set(instance.get_dynamic_partitions(synthetic_specs.name))
    instance.add_dynamic_partitions(synthetic_specs.name, [n for n in names if n not in have])
    return names


@asset(partitions_def=synthetic_specs, group_name="synthetic",
       check_specs=[counts_spec(ASSET)], kinds={"webdataset"})
def synthetic(context, storage: StorageResource) -> MaterializeResult:
    """``synthetic/{spec}/{i:05d}.tar``: LLaVA samples rendered from the spec (clocks,
    counting with pointing), each with its generator parameters; every answer re-derived by
    the checker (failures quarantined with a reason, ``quarantine/synthetic/{spec}.parquet``),
    ``stats.json`` with the answer distribution and a chi-square uniformity test."""
    store, name = storage.store(), context.partition_key
    spec = load_spec(store, name)
    uncommit(store, ASSET, name)
    uncommit(store, "synthetic_checked", name)  # checked the samples about to be replaced
    with Timer() as t:
        counts, stats, paths, quarantine = build_spec(store, spec)
    write_quarantine(store, ASSET, name, quarantine)
    uni = stats.get("uniformity", {})
    return global_result(store, ASSET, counts, paths, {
        "spec": name, "generator": spec.generator, "seed": spec.seed, "size": spec.size,
        "shards": len(paths), "seconds": t.seconds,
        "samples_per_second": round(counts.n_in / max(t.seconds, 1e-9), 1),
        "uniformity_p_value": uni.get("p_value"),
        "answer_distribution": MetadataValue.json(stats["answer_distribution"]),
        "question_kinds": MetadataValue.json(stats["question_kinds"]),
        "stats": store.url(layout.synthetic_stats(name))}, digests=False, partition=name)
