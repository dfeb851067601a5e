"""The non-model stages end to end on a synthetic MAmmoTH-like corpus, through the functions the
assets run (no Dagster daemon): ingest, raw_shards, image_hashes, text_quality, exact_duplicates
(exact + near), ppl_deciles, curated, merged. Called by
``bench/bench_scale.py pipeline --n N [--workers W]``.

The per-shard stages go through :func:`mm_assets.assets._common.per_shard` with all shards as
one batched run (what ``mm-assets run --batch`` / a backfill does), so commit records, counts
and the blocking checks are made as in the graph, in ``W`` worker processes. The global stages
repeat the asset bodies' core calls. Model outputs are synthetic: perplexity scores are drawn
from a log-normal (seeded) and SemDeDup marks nothing (its 1M-point cost is measured on its own
by ``bench/bench_semdedup_scale.py``), so the figures are the pipeline's own costs.
"""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from types import SimpleNamespace

import numpy as np
import polars as pl

from bench.synth_mammoth import write_llava
from mm_assets.assets._common import per_shard
from mm_assets.assets.curated import build_shard_index, curate_shard, index_fingerprint
from mm_assets.assets.dedup import hash_shard
from mm_assets.assets.merged import _curated_samples, _kept_images
from mm_assets.assets.raw import raw_shard
from mm_assets.assets.text_quality import flag_shard
from mm_assets.core import layout, schemas
from mm_assets.core.commits import GLOBAL, write_commit
from mm_assets.core.curate.decide import CurateConfig
from mm_assets.core.dedup.exact import exact_groups
from mm_assets.core.dedup.near import near_duplicate_groups
from mm_assets.core.ingest.plan import IngestConfig, plan_ingest
from mm_assets.core.ingest.rawshard import RawShardConfig
from mm_assets.core.quality.ppl import decile_table
from mm_assets.core.quality.text_flags_config import TextQualityConfig
from mm_assets.core.records import StageCounts
from mm_assets.core.shards import write_shards
from mm_assets.core.storage import Store
from mm_assets.core.text.merge import MergeConfig
from mm_assets.core.text.merge_stream import merged_stream


def _run(shards: list[str], asset: str, fn, *args, workers: int, upstream: str | None = None):
    ctx = SimpleNamespace(partition_keys=shards, log=logging.getLogger("bench"))
    res = per_shard(ctx, asset, fn, *args, workers=workers, upstream=upstream)
    bad = [c for c in res.check_results if not c.passed]
    assert not bad, f"{asset}: blocking check failed: {bad}"
    return res.metadata


def _commit(store: Store, asset: str, rel: str, n_in: int, n_out: int) -> None:
    write_commit(store, asset, GLOBAL, StageCounts(n_in, n_out), [rel], digests=True)


def bench_pipeline(n: int, row, peak, workers: int = 2, shard_size: int = 1000) -> None:
    with tempfile.TemporaryDirectory() as d:
        with peak() as p:
            src = write_llava(f"{d}/src", n)
        row("(generate the LLaVA JSONL + images)", n, p)
        store = Store(f"{d}/root")
        with peak() as p:
            shards = plan_ingest(store, [str(src)], f"{d}/src/images", IngestConfig(shard_size))
        row("ingest", n, p, f"{len(shards)} shards")
        with peak() as p:
            md = _run(shards, "raw_shards", raw_shard, store, RawShardConfig(),
                      workers=workers)
        row("raw_shards", n, p, f"{md['run_n_out']:,} out, {md['run_workers']} workers")
        with peak() as p:
            md = _run(shards, "image_hashes", hash_shard, store, 64_000_000, workers=workers,
                      upstream="raw_shards")
        row("image_hashes (reusing raw_shards' hashes)", n, p, f"{md['run_workers']} workers")
        with peak() as p:
            md = _run(shards, "text_quality", flag_shard, store, TextQualityConfig(),
                      workers=workers, upstream="raw_shards")
        row("text_quality", n, p, f"{md['run_workers']} workers")
        with peak() as p:
            hashes = pl.concat([store.read_table(layout.image_hashes(s), schemas.IMAGE_HASHES)
                                for s in shards])
            groups = exact_groups(hashes, "merge")
            store.write_table(layout.EXACT_GROUPS, groups, schemas.EXACT_GROUPS)
            near = near_duplicate_groups(hashes, 6)
            store.write_table(layout.NEAR_GROUPS, near, schemas.NEAR_GROUPS)
            _commit(store, "exact_duplicates", layout.EXACT_GROUPS, hashes.height,
                    hashes.height)
        row("exact_duplicates (+ near, radius 6)", n, p,
            f"{groups.height:,} in groups, {near.height:,} near")
        keys = hashes["key"]
        del hashes, groups, near
        with peak() as p:  # synthetic perplexity: the decile step's own cost
            ppl = np.exp(np.random.default_rng(0).normal(2.0, 0.5, len(keys)))
            table = pl.DataFrame({"key": keys, "ppl": ppl, "source": ["synth"] * len(keys)})
            out, _ = decile_table(table, False)
            store.write_table(layout.PPL_DECILES_TABLE, out, schemas.PPL_DECILES)
            _commit(store, "ppl_deciles", layout.PPL_DECILES_TABLE, len(keys), out.height)
            store.write_table(layout.SEMDEDUP_SCORES, pl.DataFrame(
                schema=schemas.SEMDEDUP_SCORES), schemas.SEMDEDUP_SCORES)
            _commit(store, "semdedup", layout.SEMDEDUP_SCORES, 0, 0)
        row("ppl_deciles (synthetic scores; semdedup marks none)", n, p)
        with peak() as p:
            fp = index_fingerprint(store)
            build_shard_index(store, fp, shards)
        row("curated: index of the global tables (once per version)", n, p)
        with peak() as p:
            md = _run(shards, "curated", curate_shard, store, CurateConfig(workers=workers),
                      fp, workers=workers, upstream="raw_shards")
        row("curated", n, p, f"{md['run_n_out']:,} kept, {md['run_n_removed']:,} removed, "
            f"{md['run_workers']} workers")
        stats: Counter = Counter()
        with peak() as p:
            write_shards(store, layout.MERGED, merged_stream(
                shards, _kept_images(store), _curated_samples(store), MergeConfig(), stats, d),
                1000)
        row("merged (streaming)", n, p, f"{stats['in']:,} in, {stats['groups']:,} groups, "
            f"spool {stats['spool_bytes'] / 2**20:.0f} MiB")
        du = sum(f.stat().st_size for f in __import__("pathlib").Path(f"{d}/root").rglob("*")
                 if f.is_file())
        print(f"\nroot size on disk: {du / 2**20:,.0f} MiB")
