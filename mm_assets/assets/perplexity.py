"""ppl_scores (per shard) and ppl_deciles (global)."""

from collections import Counter

import numpy as np
import polars as pl
from dagster import Config, MaterializeResult, asset

from mm_assets.assets._common import (
    Timer,
    global_result,
    md_table,
    per_shard,
    read_shard,
    upstream_shards,
)
from mm_assets.checks import counts_spec, upstream_spec
from mm_assets.config import dagster_config
from mm_assets.core import layout, schemas
from mm_assets.core.quality.ppl import PplConfig, decile_table
from mm_assets.core.records import StageCounts
from mm_assets.partitions import GPU_POOL, GPU_TAGS, shard_backfill, shards
from mm_assets.viz.plots import ppl_histogram
from resources.models import LanguageModelResource
from resources.storage import StorageResource

DECILE_TABLE = layout.PPL_DECILES_TABLE
SCORES_READ = schemas.subset(schemas.PPL_SCORES, "key", "ppl")  # ``source``: when present
PplScoresConfig = dagster_config(PplConfig, "PplScoresConfig")


@asset(partitions_def=shards, backfill_policy=shard_backfill, deps=["raw_shards"],
       group_name="quality", check_specs=[counts_spec("ppl_scores"), upstream_spec("ppl_scores")],
       kinds={"pytorch"},
       op_tags=GPU_TAGS, pool=GPU_POOL)
def ppl_scores(context, config: PplScoresConfig, storage: StorageResource,
               lm: LanguageModelResource) -> MaterializeResult:
    """Perplexity of the assistant tokens given the conversation (and of the whole text) per
    sample, ``ppl_scores/{shard}.parquet``; unscorable samples carry a reason, not a score."""
    store, cfg = storage.store(), config.core()
    model = lm.ppl_scorer(cfg)

    def run(shard: str):
        samples = read_shard(store, layout.RAW_SHARDS, shard)
        table = model.score(samples)
        store.write_table(layout.ppl_scores(shard), table, schemas.PPL_SCORES)
        unscored = Counter(r for r in table["reason"].to_list() if r)
        tokens = int(table["n_tokens"].sum())
        return StageCounts(len(samples), table.height), {
            "model": model.name, "device": model.device, "tokens": tokens,
            "unscored": sum(unscored.values()), "truncated": int(table["truncated"].sum()),
            "long_text_rule": model.long_text_rule,
            "median_ppl": float(table["ppl"].median() or float("nan"))}

    return per_shard(context, "ppl_scores", run, store=store, upstream="raw_shards")


class PplDecilesConfig(Config):
    per_source: bool = False  # deciles within each source (``decile``); ``global_decile`` kept


@asset(deps=["ppl_scores"], group_name="quality", check_specs=[counts_spec("ppl_deciles")],
       kinds={"polars"})
def ppl_deciles(context, config: PplDecilesConfig, storage: StorageResource
                ) -> MaterializeResult:
    """Decile edges of assistant perplexity over the corpus (or per source) and each sample's
    decile (0-9, -1 when unscored): ``ppl_deciles/deciles.parquet``, ``ppl_deciles/edges.json``."""
    store = storage.store()
    with Timer() as t:
        names = upstream_shards(store, "ppl_scores")
        parts = [store.read_table(layout.ppl_scores(s), SCORES_READ) for s in names]
        n_read = sum(p.height for p in parts)
        table = pl.concat(parts, how="diagonal")
        out, edges = decile_table(table, config.per_source)
        store.write_table(DECILE_TABLE, out, schemas.PPL_DECILES)
        store.write_json(layout.PPL_DECILE_EDGES, edges)
    deciles = out["decile"].to_numpy()
    hist = np.bincount(deciles[deciles >= 0], minlength=10)
    counts = StageCounts(n_read, out.height)  # rows read from committed shards vs written
    return global_result(store, "ppl_deciles", counts, [DECILE_TABLE], {
        "edges": [round(float(e), 3) for e in edges["edges"]],
        "scope": "per_source" if config.per_source else "global",
        "sources": out["source"].n_unique(),
        "unscored": int((deciles < 0).sum()), "seconds": t.seconds,
        "decile_counts": md_table(pl.DataFrame({"decile": list(range(10)),
                                                "samples": hist.tolist()})),
        "ppl_histogram": ppl_histogram(out["ppl"].fill_null(float("nan")).to_numpy(),
                                       edges["edges"])})
