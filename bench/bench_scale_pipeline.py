"""The non-model stages end to end on a synthetic MAmmoTH-like corpus, through their core
functions (no Dagster): ingest, raw_shards, image_hashes, exact_duplicates (exact + near),
curated (index + decisions; SemDeDup and deciles stubbed: no duplicates, every sample decile
0), merged. Called by ``bench/bench_scale.py pipeline --n N``."""

from __future__ import annotations

import tempfile
from collections import Counter

import polars as pl

from bench.synth_mammoth import write_llava
from mm_assets.core.curate.decide import CurateConfig, apply, decide
from mm_assets.core.curate.index import build_index, decision_inputs
from mm_assets.core.dedup.exact import exact_groups, hash_samples
from mm_assets.core.dedup.near import near_duplicate_groups
from mm_assets.core.ingest.plan import IngestConfig, plan_ingest, read_manifest
from mm_assets.core.ingest.rawshard import RawShardConfig, build_samples
from mm_assets.core.shards import read_samples, write_samples, write_shards
from mm_assets.core.storage import Store
from mm_assets.core.text.merge import MergeConfig
from mm_assets.core.text.merge_stream import merged_stream


def _read(store: Store, rel: str):
    with store.open_read(rel) as f:
        yield from read_samples(f)


def bench_pipeline(n: int, row, peak) -> None:
    with tempfile.TemporaryDirectory() as d:
        src = write_llava(f"{d}/src", n)
        store = Store(f"{d}/root")
        with peak() as p:
            shards = plan_ingest(store, [str(src)], f"{d}/src/images", IngestConfig(1000))
        row("ingest", n, p)
        with peak() as p:
            for s in shards:
                header, recs = read_manifest(store, s)
                with store.open_write(f"raw_shards/{s}.tar") as f:
                    write_samples(f, build_samples(header, recs, RawShardConfig(), []))
        row("raw_shards", n, p)
        with peak() as p:
            for s in shards:
                store.write_parquet(f"image_hashes/{s}.parquet",
                                    hash_samples(_read(store, f"raw_shards/{s}.tar"), 64_000_000))
        row("image_hashes", n, p)
        with peak() as p:
            hashes = pl.concat([store.read_parquet(f"image_hashes/{s}.parquet") for s in shards])
            groups = exact_groups(hashes, "merge")
            near = near_duplicate_groups(hashes, 6)
        row("exact_duplicates (+ near)", n, p, f"{groups.height:,} in groups, "
            f"{near.height:,} near")
        with peak() as p:
            key_shard = pl.concat([store.read_parquet(f"image_hashes/{s}.parquet").select(
                "key", pl.lit(s).alias("shard")) for s in shards])
            scores = key_shard.select("key", pl.lit(False).alias("duplicate"))
            dec = key_shard.select("key", pl.lit(0).alias("decile"))
            index = build_index(key_shard, groups, scores, dec)
            del key_shard, hashes
            for s in shards:
                samples = list(_read(store, f"raw_shards/{s}.tar"))
                exact, sd, dl = decision_inputs(index[s])
                decisions = decide([x.key for x in samples], exact, sd, dl, CurateConfig())
                kept, _ = apply(samples, decisions)
                store.write_parquet(f"curated/{s}.decisions.parquet", decisions)
                with store.open_write(f"curated/{s}.tar") as f:
                    write_samples(f, kept)
        row("curated", n, p)

        def kept_images(s):
            k = store.read_parquet(f"curated/{s}.decisions.parquet").filter(
                pl.col("status") == "kept")["key"]
            return store.read_parquet(f"image_hashes/{s}.parquet").filter(
                pl.col("key").is_in(k.implode()) & pl.col("list_hash").is_not_null()).select(
                "key", "pixel_list_hash")

        stats: Counter = Counter()
        with peak() as p:
            write_shards(store, "merged", merged_stream(
                shards, kept_images, lambda s: _read(store, f"curated/{s}.tar"), MergeConfig(),
                stats, d), 1000)
        row("merged", n, p, f"{stats['groups']:,} groups")
