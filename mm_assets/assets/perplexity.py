"""ppl_scores (per shard) and ppl_deciles (global)."""

from collections import Counter

import numpy as np
import polars as pl
from dagster import Config, MaterializeResult, asset

from mm_assets.assets._common import Timer, bar_plot, per_shard, read_shard, upstream_shards
from mm_assets.checks import counts_result, counts_spec
from mm_assets.core.ppl import PplConfig, assign_deciles, decile_edges, score_samples
from mm_assets.core.records import StageCounts
from mm_assets.partitions import GPU_TAGS, shard_backfill, shards
from resources.models import LanguageModelResource
from resources.storage import StorageResource


class PplScoresConfig(Config):
    max_length: int = 2048
    batch_tokens: int = 8192


@asset(partitions_def=shards, backfill_policy=shard_backfill, deps=["raw_shards"],
       group_name="quality", check_specs=[counts_spec("ppl_scores")], kinds={"pytorch"},
       op_tags=GPU_TAGS)
def ppl_scores(context, config: PplScoresConfig, storage: StorageResource,
               lm: LanguageModelResource) -> MaterializeResult:
    """Perplexity of the assistant tokens given the conversation (and of the whole text) per
    sample, ``ppl_scores/{shard}.parquet``; unscorable samples carry a reason, not a score."""
    store, cfg, model = storage.store(), PplConfig(config.max_length, config.batch_tokens), lm.load()

    def run(shard: str):
        samples = read_shard(store, "raw_shards", shard)
        table = score_samples(samples, model, cfg)
        store.write_parquet(f"ppl_scores/{shard}.parquet", table)
        unscored = Counter(r for r in table["reason"].to_list() if r)
        tokens = int(table["n_tokens"].sum())
        return StageCounts(len(samples), table.height), {
            "model": model.name, "device": model.device, "tokens": tokens,
            "unscored": sum(unscored.values()), "truncated": int(table["truncated"].sum()),
            "long_text_rule": f"right-truncated at {cfg.max_length} tokens",
            "median_ppl": float(table["ppl"].median() or float("nan"))}

    return per_shard(context, "ppl_scores", run)


@asset(deps=["ppl_scores"], group_name="quality", check_specs=[counts_spec("ppl_deciles")],
       kinds={"polars"})
def ppl_deciles(context, storage: StorageResource) -> MaterializeResult:
    """Decile edges of assistant perplexity over the corpus and each sample's decile (0-9,
    -1 when unscored): ``ppl_deciles/deciles.parquet`` and ``ppl_deciles/edges.json``."""
    store = storage.store()
    with Timer() as t:
        names = upstream_shards(store, "ppl_scores", ".parquet")
        table = pl.concat([store.read_parquet(f"ppl_scores/{s}.parquet") for s in names])
        ppl = table["ppl"].fill_null(float("nan")).to_numpy()
        edges = decile_edges(ppl)
        deciles = assign_deciles(ppl, edges)
        out = table.select("key", "ppl").with_columns(pl.Series("decile", deciles))
        store.write_parquet("ppl_deciles/deciles.parquet", out)
        store.write_json("ppl_deciles/edges.json", {"edges": edges.tolist()})
    hist = np.bincount(deciles[deciles >= 0], minlength=10)
    counts = StageCounts(table.height, table.height)
    return MaterializeResult(metadata={
        **counts.as_metadata(), "edges": [round(float(e), 3) for e in edges],
        "unscored": int((deciles < 0).sum()), "seconds": t.seconds,
        "decile_counts": bar_plot(list(range(10)), hist.tolist(), "samples per decile",
                                  "decile")}, check_results=[counts_result(counts)])
