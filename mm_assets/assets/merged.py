"""merged and rephrased (global): conversations sharing an image list merged into one sample,
then assistant turns rewritten by the language model."""

from collections import Counter

import polars as pl
from dagster import AutomationCondition, MaterializeResult, asset

from mm_assets.assets._common import (
    Timer,
    read_shard,
    read_sharded,
    upstream_shards,
)
from mm_assets.checks import counts_result, counts_spec
from mm_assets.config import dagster_config
from mm_assets.core.records import StageCounts
from mm_assets.core.shards import write_shards
from mm_assets.core.storage import Store
from mm_assets.core.text.merge import MergeConfig, merge_group
from mm_assets.core.text.rephrase import RephraseConfig, rephrase_samples
from mm_assets.partitions import CURATE_CRON, GPU_POOL, GPU_TAGS
from resources.models import LanguageModelResource
from resources.storage import StorageResource

SHARD_SIZE = {"shard_size": (int, 1000, "samples per output shard")}
MergedConfig = dagster_config(MergeConfig, "MergedConfig", extra=SHARD_SIZE)


def _merged_stream(store: Store, shards: list[str], cfg: MergeConfig, stats: Counter):
    hashes = pl.concat([store.read_parquet(f"image_hashes/{s}.parquet") for s in shards])
    curated_keys = pl.concat([store.read_parquet(f"curated/{s}.decisions.parquet")
                              for s in shards]).filter(pl.col("status") == "kept")["key"]
    h = hashes.filter(pl.col("key").is_in(curated_keys.implode())
                      & pl.col("list_hash").is_not_null())
    size = dict(h.group_by("pixel_list_hash").len().iter_rows())
    group_of = dict(zip(h["key"].to_list(), h["pixel_list_hash"].to_list(), strict=True))
    open_groups: dict[str, list] = {}
    for shard in shards:
        for s in read_shard(store, "curated", shard):
            stats["in"] += 1
            g = group_of.get(s.key)
            if g is None or size[g] == 1:
                stats["passthrough"] += 1
                yield s
                continue
            open_groups.setdefault(g, []).append(s)
            if len(open_groups[g]) == size[g]:
                members = open_groups.pop(g)
                parts = merge_group(members, cfg)
                stats["groups"] += 1
                stats["merged_members"] += len(members) - 1
                stats["parts"] += len(parts)
                yield from parts


@asset(deps=["curated", "exact_duplicates"], group_name="text", kinds={"webdataset"},
       check_specs=[counts_spec("merged")],
       automation_condition=AutomationCondition.on_cron(CURATE_CRON))
def merged(context, config: MergedConfig, storage: StorageResource) -> MaterializeResult:
    """``merged/{i:05d}.tar``: curated samples, those sharing an identical image list (pixel
    hashes) merged into
    one multi-turn sample (provenance in ``metadata.merged_from``); text-only never merged."""
    store, cfg = storage.store(), config.core()
    shards = upstream_shards(store, "curated", ".tar")
    stats: Counter = Counter()
    with Timer() as t:
        paths = write_shards(store, "merged", _merged_stream(store, shards, cfg, stats),
                              config.shard_size)
    counts = StageCounts(stats["in"], stats["passthrough"] + stats["groups"])
    counts.removed["merged_into_group"] = stats["merged_members"]
    return MaterializeResult(metadata={
        **counts.as_metadata(), "groups_merged": stats["groups"],
        "samples_written": stats["passthrough"] + stats["parts"],
        "split_parts": stats["parts"] - stats["groups"], "shards": len(paths),
        "seconds": t.seconds}, check_results=[counts_result(counts)])


RephrasedConfig = dagster_config(RephraseConfig, "RephrasedConfig", extra=SHARD_SIZE)


@asset(deps=["merged"], group_name="text", check_specs=[counts_spec("rephrased")],
       kinds={"pytorch"}, op_tags=GPU_TAGS, pool=GPU_POOL)
def rephrased(context, config: RephrasedConfig, storage: StorageResource,
              lm: LanguageModelResource) -> MaterializeResult:
    """``rephrased/{i:05d}.tar``: merged samples with assistant turns rewritten (cached by
    model, template and input; rewrites failing the fidelity check keep the original)."""
    store = storage.store()
    cfg = config.core()
    model = lm.rephrase_backend(cfg.max_new_tokens)  # local LM, or the endpoint when set
    samples = list(read_sharded(store, "merged"))
    stats: dict[str, int] = {}
    with Timer() as t:
        out = rephrase_samples(samples, model.generate, model.name, cfg, store, stats)
        paths = write_shards(store, "rephrased", out, config.shard_size)
    counts = StageCounts(len(samples), len(out))
    return MaterializeResult(metadata={
        **counts.as_metadata(), **{f"turns_{k}": v for k, v in sorted(stats.items())},
        **{f"backend_{k}": v for k, v in sorted(model.stats.items())},
        "model": model.name, "template": cfg.template, "shards": len(paths),
        "samples_considered": min(len(samples), cfg.max_samples or len(samples)),
        "seconds": t.seconds}, check_results=[counts_result(counts)])
