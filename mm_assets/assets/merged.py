"""merged and rephrased (global): conversations sharing an image list merged into one sample,
then assistant turns rewritten by the language model."""

from collections import Counter

import polars as pl
from dagster import AutomationCondition, MaterializeResult, asset

from mm_assets.assets._common import (
    Timer,
    global_result,
    read_sharded,
    upstream_shards,
)
from mm_assets.assets.curated import require_current_curated
from mm_assets.checks import counts_spec, image_token_result, image_token_spec
from mm_assets.config import dagster_config
from mm_assets.core import layout, schemas
from mm_assets.core.records import StageCounts
from mm_assets.core.shards import read_samples, write_shards
from mm_assets.core.storage import Store
from mm_assets.core.text.merge import MergeConfig, image_token_problem
from mm_assets.core.text.merge_stream import merged_stream
from mm_assets.core.text.rephrase import RephraseConfig
from mm_assets.core.text.rephrase_stream import rephrase_stream
from mm_assets.partitions import CURATE_CRON, GPU_POOL, GPU_TAGS
from resources.models import LanguageModelResource
from resources.storage import StorageResource

SHARD_SIZE = {"shard_size": (int, 1000, "samples per output shard")}
MergedConfig = dagster_config(MergeConfig, "MergedConfig", extra=SHARD_SIZE)
DECISIONS = schemas.subset(schemas.CURATED_DECISIONS, "key", "status")
HASHES = schemas.subset(schemas.IMAGE_HASHES, "key", "list_hash", "pixel_list_hash")


def _kept_images(store: Store):
    """Per shard: kept image samples of curated with their pixel-list hash."""
    def load(shard: str) -> pl.DataFrame:
        kept = store.read_table(layout.curated_decisions(shard), DECISIONS).filter(
            pl.col("status") == "kept")["key"]
        return store.read_table(layout.image_hashes(shard), HASHES).filter(
            pl.col("key").is_in(kept.implode()) & pl.col("list_hash").is_not_null()).select(
            "key", "pixel_list_hash")
    return load


def _curated_samples(store: Store):
    def load(shard: str):
        with store.open_read(layout.curated_shard(shard)) as f:
            yield from read_samples(f)
    return load


def _checked(samples, problems: list[tuple[str, str]]):
    """Pass samples through, noting each one that breaks the image-token rule."""
    for s in samples:
        why = image_token_problem(s)
        if why:
            problems.append((s.key, why))
        yield s


@asset(deps=["curated", "exact_duplicates"], group_name="text", kinds={"webdataset"},
       check_specs=[counts_spec("merged"), image_token_spec("merged")],
       automation_condition=AutomationCondition.on_cron(CURATE_CRON))
def merged(context, config: MergedConfig, storage: StorageResource) -> MaterializeResult:
    """``merged/{i:05d}.tar``: curated samples, those sharing an identical image list (pixel
    hashes) merged into
    one multi-turn sample (provenance in ``metadata.merged_from``); text-only never merged.
    Streams: memory ≈ 24 B per kept image sample + ≈ 120 B per member waiting for its group,
    members spilled to a local spool (:mod:`mm_assets.core.text.merge_stream`). Fails
    (UncommittedError) while a curated shard applies superseded global decisions
    (:func:`mm_assets.assets.curated.require_current_curated`)."""
    store, cfg = storage.store(), config.core()
    shards = upstream_shards(store, "curated")
    require_current_curated(store)  # no merge of shards applying superseded decisions
    stats: Counter = Counter()
    problems: list[tuple[str, str]] = []
    with Timer() as t:
        stream = merged_stream(shards, _kept_images(store), _curated_samples(store), cfg, stats)
        paths = write_shards(store, layout.MERGED, _checked(stream, problems),
                             config.shard_size)
    counts = StageCounts(stats["in"], stats["passthrough"] + stats["groups"])
    counts.removed["merged_into_group"] = stats["merged_members"]
    return global_result(store, "merged", counts, paths, {
        "groups_merged": stats["groups"],
        "samples_written": stats["passthrough"] + stats["parts"],
        "split_parts": stats["parts"] - stats["groups"], "shards": len(paths),
        "incomplete_groups": stats["incomplete_groups"], "spool_bytes": stats["spool_bytes"],
        "seconds": t.seconds}, digests=False, checks=[
            image_token_result(stats["passthrough"] + stats["parts"], problems)])


RephrasedConfig = dagster_config(RephraseConfig, "RephrasedConfig", extra=SHARD_SIZE)


@asset(deps=["merged"], group_name="text", check_specs=[counts_spec("rephrased")],
       kinds={"pytorch"}, op_tags=GPU_TAGS, pool=GPU_POOL)
def rephrased(context, config: RephrasedConfig, storage: StorageResource,
              lm: LanguageModelResource) -> MaterializeResult:
    """``rephrased/{i:05d}.tar``: merged samples with assistant turns rewritten (cached by
    model, template and input; rewrites failing the fidelity check keep the original).
    Streams merged shard by shard into the output shards: memory ≈ one batch of turns + up to
    64 samples waiting for it + ≈ 150 B per further waiting sample (spooled to a local file)
    + ≈ 100 B per generated turn (:mod:`mm_assets.core.text.rephrase_stream`); never every
    sample."""
    store = storage.store()
    cfg = config.core()
    model = lm.rephrase_backend(cfg.max_new_tokens)  # local LM, or the endpoint when set
    stats: dict[str, int] = {}
    seen: dict[str, int] = {}
    with Timer() as t:
        out = rephrase_stream(read_sharded(store, layout.MERGED), model.generate, model.name,
                              cfg, store, stats, seen)
        n_out = Counter()
        paths = write_shards(store, layout.REPHRASED, _counted(out, n_out), config.shard_size)
    n = seen["samples"]
    counts = StageCounts(n, n_out["samples"])  # every sample read is written (rewritten or not)
    return global_result(store, "rephrased", counts, paths, {
        **{f"turns_{k}": v for k, v in sorted(stats.items())},
        **{f"backend_{k}": v for k, v in sorted(model.stats.items())},
        "model": model.name, "template": cfg.template, "shards": len(paths),
        "samples_considered": min(n, cfg.max_samples or n),
        "samples_spooled": seen["spooled"], "seconds": t.seconds}, digests=False)


def _counted(samples, n: Counter):
    for s in samples:
        n["samples"] += 1
        yield s
