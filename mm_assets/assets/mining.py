"""mined (one partition per mining recipe): pool images chosen per corpus cluster."""

import polars as pl
from dagster import (
    AllPartitionMapping,
    AssetDep,
    DagsterInstance,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)

from mm_assets.assets._common import Timer, global_result, md_table
from mm_assets.checks import counts_spec
from mm_assets.config import dagster_config
from mm_assets.core import layout
from mm_assets.core.commits import uncommit
from mm_assets.core.mine.output import write_mined
from mm_assets.core.mine.pool_shard import centroids_digest
from mm_assets.core.mine.recipe import MiningRecipeError, load_mining_recipe, root_mining_recipes
from mm_assets.core.mine.select import MiningError, SelectConfig, select
from mm_assets.partitions import mining
from resources.storage import StorageResource

ASSET = "mined"
MinedConfig = dagster_config(SelectConfig, "MinedConfig")


def register_mining(instance: DagsterInstance, storage: StorageResource,
                    names: list[str] | None = None) -> list[str]:
    """Add ``names`` (default: the root's own mining recipes, ``{root}/mining/*.yaml``) as
    ``mining`` partitions; returns them. Shipped examples are registered only when named."""
    names = sorted(root_mining_recipes(storage.store()) if names is None else names)
    have = set(instance.get_dynamic_partitions(mining.name))
    instance.add_dynamic_partitions(mining.name, [n for n in names if n not in have])
    return names


# a recipe selects from every pool shard against every corpus shard: all their partitions are
# upstream of each recipe (not the same-named one: backfills failed, tryout S3)
@asset(partitions_def=mining, deps=["clusters", *(
           AssetDep(k, partition_mapping=AllPartitionMapping())
           for k in ("pool_assign", "image_hashes", "embeddings"))],
       group_name="mining", check_specs=[counts_spec(ASSET)], kinds={"webdataset"})
def mined(context, config: MinedConfig, storage: StorageResource) -> MaterializeResult:
    """``mined/{recipe}/{i:05d}.tar``: LLaVA samples (``<image>`` + the recipe's prompt, the
    pool caption as the answer) of the pool images a mining recipe selects per corpus image
    cluster — seeded, filtered by centroid similarity and caption, deduped against the corpus
    and among themselves (:mod:`mm_assets.core.mine.select`); ``manifest.json`` per cluster
    (wanted, candidates, taken, rejected per reason, not needed, shortfall);
    ``selection.parquet``. Counts: every pool row read = taken + removed per reason. The
    commit record keeps the centroids' digest (``inputs.centroids``): after a re-cluster the
    partition is stale (:func:`mm_assets.core.mine.pool_shard.stale_mined`), re-run by
    ``run --missing`` and refused by ``mixtures``."""
    store, name, cfg = storage.store(), context.partition_key, config.core()
    uncommit(store, ASSET, name)
    cents = centroids_digest(store)  # recorded: mixtures refuse a selection of older clusters
    try:
        recipe = load_mining_recipe(store, name)
        with Timer() as t:
            sel = select(store, recipe, cfg.oversample, cfg.max_rounds)
            paths, man = write_mined(store, recipe, sel)
    except (MiningRecipeError, MiningError) as e:
        raise Failure(f"mined[{name}]: {type(e).__name__}: {e}") from e
    reads = man["pool_reads"]
    if reads.get("note"):  # tables from before byte spans: whole shards were scanned
        context.log.warning(f"mined[{name}]: {reads['note']}")
    table = pl.DataFrame([{"cluster": int(c), **{k: v for k, v in d.items() if k != "rejected"},
                           "rejected": sum(d["rejected"].values())}
                          for c, d in man["clusters"].items() if d["wanted"] or d["taken"]])
    return global_result(store, ASSET, sel.counts, [*paths, layout.mined_selection(name)], {
        "recipe": name, "pools": ", ".join(recipe.pools), "mode": recipe.mode,
        "seed": recipe.seed, "shards": len(paths), "rounds": sel.rounds,
        "peak_kept_rows": sel.peak_kept, "seconds": t.seconds,
        "pool_bytes_read": reads["bytes_read"], "pool_range_requests": reads["requests"],
        "pool_shards_scanned": reads["scanned_shards"],
        **{f"total_{k}": v for k, v in man["totals"].items() if k != "rejected"},
        "per_cluster": md_table(table) if table.height else MetadataValue.md("(none wanted)"),
        "manifest": store.url(layout.mined_manifest(name))}, digests=False, partition=name,
        inputs={"centroids": cents} if cents else None)
