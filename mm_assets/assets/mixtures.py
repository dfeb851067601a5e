"""mixtures (one partition per recipe): WebDataset shards + manifest.json."""

from collections import Counter
from dataclasses import asdict

from dagster import AssetKey, MaterializeResult, asset

from mm_assets.assets._common import (
    Timer,
    read_shard,
    read_sharded,
    upstream_shards,
    write_sharded,
)
from mm_assets.checks import counts_result, counts_spec
from mm_assets.core.mixing import Recipe, plan_counts, select
from mm_assets.core.recipes import load_recipe
from mm_assets.core.records import StageCounts
from mm_assets.core.storage import Store
from mm_assets.partitions import recipes
from resources.storage import StorageResource


def source_samples(store: Store, recipe: Recipe):
    if recipe.source == "curated":
        for shard in upstream_shards(store, "curated", ".tar"):
            yield from read_shard(store, "curated", shard)
    else:
        yield from read_sharded(store, recipe.source)


def _eligible(s, recipe: Recipe) -> bool:
    lo, hi = recipe.deciles
    return (lo, hi) == (0, 9) or lo <= s.metadata.get("ppl_decile", -1) <= hi


@asset(partitions_def=recipes, deps=["curated", "merged", "rephrased"], group_name="mixtures",
       check_specs=[counts_spec("mixtures")], kinds={"webdataset"})
def mixtures(context, storage: StorageResource) -> MaterializeResult:
    """``mixtures/{recipe}/{i:05d}.tar`` drawn per the recipe, and ``manifest.json`` with the
    recipe, seed, counts per modality/decile/source and the upstream materializations."""
    store, name = storage.store(), context.partition_key
    recipe = load_recipe(store, name)
    with Timer() as t:
        pool: dict[str, list[str]] = {"text": [], "multimodal": []}
        for s in source_samples(store, recipe):
            if _eligible(s, recipe):
                pool["multimodal" if s.images else "text"].append(s.key)
        counts_by_mod = plan_counts(recipe, {m: len(v) for m, v in pool.items()})
        order = select(pool, counts_by_mod, recipe.seed)
        rank = {k: i for i, k in enumerate(order)}
        picked = sorted((s for s in source_samples(store, recipe) if s.key in rank),
                        key=lambda s: rank[s.key])
        paths = write_sharded(store, f"mixtures/{name}", picked, recipe.shard_size)
    deciles = Counter(str(s.metadata.get("ppl_decile", -1)) for s in picked)
    upstream = {}
    for a in ("curated", "merged", "rephrased"):
        ev = context.instance.get_latest_materialization_event(AssetKey(a))
        upstream[a] = {"run_id": ev.run_id, "timestamp": ev.timestamp} if ev else None
    manifest = {"recipe": asdict(recipe), "seed": recipe.seed, "counts": counts_by_mod, "available":
                {m: len(v) for m, v in pool.items()}, "deciles": dict(deciles),
                "sources": dict(Counter(s.source for s in picked)), "shards": paths,
                "keys": order}
    store.write_json(f"mixtures/{name}/manifest.json", manifest)  # same recipe+data: same bytes
    store.write_json(f"mixtures/{name}/lineage.json", {"upstream": upstream})
    eligible = sum(len(v) for v in pool.values())
    counts = StageCounts(eligible, len(picked))
    counts.removed["not_sampled"] = eligible - len(picked)
    return MaterializeResult(metadata={
        **counts.as_metadata(), "recipe": name, "text": counts_by_mod["text"],
        "multimodal": counts_by_mod["multimodal"], "shards": len(paths),
        "manifest": store.url(f"mixtures/{name}/manifest.json"), "seconds": t.seconds},
        check_results=[counts_result(counts)])
