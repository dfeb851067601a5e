"""Per-shard CPU stages with 1 and 2 (or more) worker processes: throughput ratio, same bytes.

Usage: .venv/bin/python bench/bench_parallel.py [--shards 8] [--per-shard 120] [--repeats 3]
       [--workers 1,2]

Builds a JSONL of ``--shards × --per-shard`` records over the real images in ../shared/data
(repeated under new keys), ingests it into a temp root, then times each stage through
``per_shard`` (the asset code path, without Dagster run start-up) with each worker count,
interleaved (1, 2, 1, 2, ...) and repeated; reports the median seconds, samples/s and the
ratio against 1 worker measured in the same run. Outputs of every run are compared byte for
byte with the 1-worker run (asserted).

Stages: raw_shards (validate + decode once + hashes recorded), image_hashes reusing the
recorded hashes (no decode), image_hashes decoding (record removed: what it cost before),
text_quality (text flags), curated (decisions from global tables committed for the bench:
exact groups from the real hashes, no SemDeDup duplicate, deciles by key order, decile range
1-8 so some samples are removed).
"""

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import polars as pl

from mm_assets.assets._common import per_shard, recorded_hashes_rel
from mm_assets.assets.curated import build_shard_index, curate_shard, index_fingerprint
from mm_assets.assets.dedup import hash_shard
from mm_assets.assets.raw import raw_shard
from mm_assets.assets.text_quality import flag_shard
from mm_assets.core import layout, schemas
from mm_assets.core.commits import GLOBAL, write_commit
from mm_assets.core.curate.decide import CurateConfig
from mm_assets.core.dedup.exact import exact_groups
from mm_assets.core.ingest.plan import IngestConfig, plan_ingest
from mm_assets.core.ingest.rawshard import RawShardConfig
from mm_assets.core.quality.text_flags_config import TextQualityConfig
from mm_assets.core.records import StageCounts
from mm_assets.core.storage import Store

SHARED = ROOT.parent / "shared" / "data"


def build_input(d: Path, n: int) -> tuple[str, str]:
    images = sorted(p for p in (SHARED / "llava").rglob("*")
                    if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    root = SHARED / "llava"
    lines = [json.dumps({"id": f"r{i}", "image": str(images[i % len(images)].relative_to(root)),
                         "conversations": [{"from": "human", "value": "<image>\nWhat is it?"},
                                           {"from": "gpt", "value": f"Answer {i}."}]})
             for i in range(n)]
    (d / "in.jsonl").write_text("\n".join(lines) + "\n")
    return str(d / "in.jsonl"), str(root)


def snapshot(store: Store, folder: str) -> dict[str, bytes]:
    return {n: store.fs.cat_file(store.path(f"{folder}/{n}")) for n in store.ls(folder)
            if not n.startswith("_")}  # curated/_index: the index, not an output


def stages(store: Store):
    """``(name, run(shards, workers), output folder, prepare(shards))``; ``prepare`` is not
    timed."""
    def raw(shards, workers):
        return per_shard(ctx(shards), "raw_shards", raw_shard, store, RawShardConfig(),
                         workers=workers)

    def hashes(shards, workers):
        return per_shard(ctx(shards), "image_hashes", hash_shard, store, 64_000_000,
                         workers=workers)

    def drop_records(shards):  # without the record, image_hashes decodes every image again
        for s in shards:
            if store.exists(recorded_hashes_rel(s)):
                store.fs.rm(store.path(recorded_hashes_rel(s)))

    def keep(shards):
        pass

    def flags(shards, workers):
        return per_shard(ctx(shards), "text_quality", flag_shard, store, TextQualityConfig(),
                         workers=workers)

    fp: list[str] = []

    def globals_once(shards):  # the global tables curated reads, committed once
        if fp:
            return
        hashes = pl.concat([store.read_table(layout.image_hashes(s), schemas.IMAGE_HASHES)
                            for s in shards])
        keys = hashes["key"].to_list()
        dec = pl.DataFrame({"key": keys, "ppl": [float(i) for i in range(len(keys))],
                            "source": ["b"] * len(keys), "decile": [i % 10 for i in
                                                                   range(len(keys))],
                            "global_decile": [i % 10 for i in range(len(keys))]},
                           schema=schemas.PPL_DECILES)
        for asset, rel, df in (
                ("exact_duplicates", layout.EXACT_GROUPS, exact_groups(hashes, "keep_one")),
                ("semdedup", layout.SEMDEDUP_SCORES, pl.DataFrame(
                    schema=schemas.SEMDEDUP_SCORES)),
                ("ppl_deciles", layout.PPL_DECILES_TABLE, dec)):
            store.write_parquet(rel, df)
            write_commit(store, asset, GLOBAL, StageCounts(df.height, df.height), [rel],
                         digests=True)
        fp.append(index_fingerprint(store))
        build_shard_index(store, fp[0], shards)

    def curate(shards, workers):
        return per_shard(ctx(shards), "curated", curate_shard, store,
                         CurateConfig(min_decile=1, max_decile=8), fp[0], workers=workers)

    return [("raw_shards", raw, "raw_shards", keep),
            ("text_quality", flags, "text_quality", keep),
            ("image_hashes (decodes)", hashes, "image_hashes", drop_records),
            ("image_hashes (reuses record)", hashes, "image_hashes",
             lambda shards: raw(shards, 0)),
            ("curated", curate, "curated", globals_once)]


def ctx(shards):
    return SimpleNamespace(partition_keys=shards, log=logging.getLogger("bench"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--per-shard", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", default="1,2")
    args = ap.parse_args()
    counts = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as d:
        store = Store(str(Path(d) / "root"))
        jsonl, images = build_input(Path(d), args.shards * args.per_shard)
        shards = plan_ingest(store, [jsonl], images, IngestConfig(shard_size=args.per_shard))
        n = args.shards * args.per_shard
        print(f"{len(shards)} shards x {args.per_shard} samples; repeats {args.repeats}, "
              f"interleaved; median seconds")
        print(f"{'stage':<30}{'workers':>8}{'seconds':>9}{'samples/s':>11}{'ratio':>8}")
        for name, fn, folder, prepare in stages(store):
            prepare(shards)
            fn(shards, 2)  # warm-up: page cache, first forkserver start
            prepare(shards)
            fn(shards, 1)
            times: dict[int, list[float]] = {w: [] for w in counts}
            ref = snapshot(store, folder)
            for _ in range(args.repeats):
                for w in counts:
                    prepare(shards)
                    t = time.perf_counter()
                    fn(shards, w)
                    times[w].append(time.perf_counter() - t)
                    assert snapshot(store, folder) == ref, f"{name}: outputs differ at {w}"
            base = statistics.median(times[counts[0]])
            for w in counts:
                med = statistics.median(times[w])
                print(f"{name:<30}{w:>8}{med:>9.2f}{n / med:>11.0f}{base / med:>8.2f}",
                      flush=True)
        print("outputs byte-identical across worker counts: yes")


if __name__ == "__main__":
    main()
