"""Global stages at MAmmoTH scale, CPU only: seconds, samples/s and peak RSS per stage.

    PYTHONPATH=. .venv/bin/python bench/bench_scale.py merged --n 1000000
    PYTHONPATH=. .venv/bin/python bench/bench_scale.py semdedup --n 1000000 --dim 768 --k 4000
    PYTHONPATH=. .venv/bin/python bench/bench_scale.py curated --n 100000 2000000
    PYTHONPATH=. .venv/bin/python bench/bench_scale.py pipeline --n 20000

Corpus: ``bench/synth_mammoth.py`` (60% reuse another record's image, 10% text-only, 3% two
images). Peak RSS is sampled every 5 ms (``bench/_rss.py``), for worker processes too (psutil),
and reported above the process's RSS at the start of the stage (imports excluded).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections import Counter

import numpy as np
import polars as pl
import psutil

from bench.synth_mammoth import records
from mm_assets.core.dedup.hashing import bytes_hash, list_hash
from mm_assets.core.shards import read_samples, write_samples, write_shards
from mm_assets.core.storage import Store


class TreePeak:
    """Peak RSS (MiB) of this process and, separately, the sum over its children."""

    def __enter__(self):
        self.me = psutil.Process()
        self.base = self.me.memory_info().rss / 2**20
        self.peak, self.kids, self.run = self.base, 0.0, True
        threading.Thread(target=self._watch, daemon=True).start()
        self.t0 = time.perf_counter()
        return self

    def _watch(self):
        while self.run:
            self.peak = max(self.peak, self.me.memory_info().rss / 2**20)
            kids = 0.0
            for c in self.me.children(recursive=True):
                try:
                    kids += c.memory_info().rss / 2**20
                except psutil.Error:
                    pass
            self.kids = max(self.kids, kids)
            time.sleep(0.005)

    def __exit__(self, *exc):
        self.run = False
        self.seconds = time.perf_counter() - self.t0
        self.extra = self.peak - self.base


def row(stage: str, n: int, p: TreePeak, note: str = "") -> None:
    print(f"| {stage} | {n:,} | {p.seconds:.1f} | {n / max(p.seconds, 1e-9):,.0f} | "
          f"{p.extra:.0f} | {p.kids:.0f} | {note} |", flush=True)


def write_curated(store: Store, n: int, per_shard: int = 1000) -> list[str]:
    """Curated shards + image_hashes and decision tables of ``n`` synthetic samples."""
    shards, it = [], records(n)
    hashes: dict[bytes, str] = {}
    for j in range(0, n, per_shard):
        name = f"{j // per_shard:06d}"
        chunk = [next(it) for _ in range(min(per_shard, n - j))]
        with store.open_write(f"curated/{name}.tar") as f:
            write_samples(f, chunk)
        hs = [[hashes.setdefault(b, bytes_hash(b)) for b in s.images] for s in chunk]
        store.write_parquet(f"image_hashes/{name}.parquet", pl.DataFrame({
            "key": [s.key for s in chunk],
            "list_hash": [list_hash(h) for h in hs],
            "pixel_list_hash": [list_hash(h) for h in hs]}))
        store.write_parquet(f"curated/{name}.decisions.parquet", pl.DataFrame(
            {"key": [s.key for s in chunk], "status": ["kept"] * len(chunk)}))
        shards.append(name)
    return shards


def bench_merged(n: int, old: bool) -> None:
    from mm_assets.core.text.merge import MergeConfig, merge_group
    from mm_assets.core.text.merge_stream import merged_stream

    with tempfile.TemporaryDirectory() as d:
        store = Store(d)
        t0 = time.perf_counter()
        shards = write_curated(store, n)
        print(f"(corpus of {n:,} written in {time.perf_counter() - t0:.0f} s)", flush=True)

        def kept(shard):
            return store.read_parquet(f"image_hashes/{shard}.parquet").filter(
                pl.col("list_hash").is_not_null()).select("key", "pixel_list_hash")

        def samples(shard):
            with store.open_read(f"curated/{shard}.tar") as f:
                yield from read_samples(f)

        stats: Counter = Counter()
        with TreePeak() as p:
            write_shards(store, "merged", merged_stream(shards, kept, samples, MergeConfig(),
                                                        stats, d), 1000)
        row("merged (streaming)", n, p, f"{stats['groups']:,} groups, "
            f"spool {stats['spool_bytes'] / 2**20:.0f} MiB")
        if not old:
            return
        with TreePeak() as p:  # the previous implementation: waiting members held in memory
            h = pl.concat([kept(s) for s in shards])
            size = dict(h.group_by("pixel_list_hash").len().iter_rows())
            group_of = dict(zip(h["key"].to_list(), h["pixel_list_hash"].to_list(), strict=True))
            open_groups: dict[str, list] = {}
            for shard in shards:
                for s in samples(shard):
                    g = group_of.get(s.key)
                    if g is None or size[g] == 1:
                        continue
                    open_groups.setdefault(g, []).append(s)
                    if len(open_groups[g]) == size[g]:
                        merge_group(open_groups.pop(g), MergeConfig())
        row("merged (in-memory, before)", n, p)


def bench_semdedup(n: int, dim: int, k: int, workers: int) -> None:
    from mm_assets.core.semantic.semdedup import SemDedupConfig
    from mm_assets.core.semantic.semdedup_parts import semdedup_blocks

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for j in range(0, n, 50_000):
            m = min(50_000, n - j)
            x = rng.standard_normal((m, dim), dtype=np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            paths.append(f"{d}/{j}.npy")
            np.save(paths[-1], x.astype(np.float16))
        assign = rng.integers(0, k, n).astype(np.int32)
        distance = rng.random(n).astype(np.float32)
        unique = rng.random(n) > 0.3
        blocks = (np.load(p, mmap_mode="r") for p in paths)
        with TreePeak() as p:
            res = semdedup_blocks(blocks, dim, assign, distance, unique,
                                  SemDedupConfig(epsilon=None, target_fraction=0.1), "cpu",
                                  workers, d)
        row(f"semdedup (D={dim}, k={k}, {workers} workers)", n, p,
            f"all vectors {n * dim * 2 / 2**20:,.0f} MiB; removed {res.duplicate.sum():,}")


def bench_curated(sizes: list[int], per_shard: int = 1000) -> None:
    from mm_assets.core.curate.decide import CurateConfig, decide
    from mm_assets.core.curate.index import build_index, decision_inputs

    for n in sizes:
        rng = np.random.default_rng(0)
        keys = pl.Series("key", [f"m{i:08d}" for i in range(n)])
        shard = pl.Series("shard", [f"{i // per_shard:06d}" for i in range(n)])
        members = np.flatnonzero(rng.random(n) < 0.6)
        groups = pl.DataFrame({"key": keys.gather(members),
                               "group_id": rng.integers(0, len(members) // 4, len(members))})
        groups = groups.with_columns(pl.col("key").min().over("group_id").alias("representative"))
        groups = groups.with_columns(pl.when(pl.col("key") == pl.col("representative")).then(
            pl.lit("keep")).otherwise(pl.lit("merge")).alias("action"))
        scores = pl.DataFrame({"key": keys, "duplicate": rng.random(n) < 0.1})
        dec = pl.DataFrame({"key": keys, "decile": rng.integers(0, 10, n)})
        with tempfile.TemporaryDirectory() as d:
            store = Store(d)
            for rel, t in [("g.parquet", groups), ("s.parquet", scores), ("d.parquet", dec)]:
                store.write_parquet(rel, t)
            shard_keys = keys[:per_shard].to_list()
            t0 = time.perf_counter()  # before: every run loads the corpus-wide tables
            g, s, dd = (store.read_parquet(r) for r in ("g.parquet", "s.parquet", "d.parquet"))
            dup = set(s.filter(pl.col("duplicate"))["key"].to_list())
            semdup = dup | set(g.filter(pl.col("representative").is_in(list(dup)))["key"])
            deciles = dict(zip(dd["key"].to_list(), dd["decile"].to_list(), strict=True))
            decide(shard_keys, g.filter(pl.col("key").is_in(shard_keys)), semdup, deciles,
                   CurateConfig())
            before = time.perf_counter() - t0
            t0 = time.perf_counter()
            parts = build_index(pl.DataFrame([keys, shard]), g, s, dd)
            for name, part in parts.items():
                store.write_parquet(f"idx/{name}.parquet", part)
            build = time.perf_counter() - t0
            runs = []
            for name in list(parts)[:: max(1, len(parts) // 7)][:7]:  # after: one small file
                t0 = time.perf_counter()
                exact, sd, dl = decision_inputs(store.read_parquet(f"idx/{name}.parquet"))
                decide(parts[name]["key"].to_list(), exact, sd, dl, CurateConfig())
                runs.append(time.perf_counter() - t0)
            after = float(np.median(runs))
        print(f"| curated per-run overhead | {n:,} | before {before:.3f} s | after "
              f"{after:.4f} s (median of {len(runs)} shards) | index built once in {build:.1f} s ({len(parts):,} shards) |",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("stage", choices=["merged", "semdedup", "curated", "pipeline"])
    ap.add_argument("--n", type=int, nargs="+", default=[100_000])
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--k", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--old", action="store_true", help="merged: also run the in-memory version")
    a = ap.parse_args()
    print("| stage | samples | seconds | samples/s | peak RSS MiB (above start) | "
          "children MiB | note |\n|---|---|---|---|---|---|---|")
    for n in a.n:
        if a.stage == "merged":
            bench_merged(n, a.old)
        elif a.stage == "semdedup":
            bench_semdedup(n, a.dim, a.k, a.workers)
        elif a.stage == "pipeline":
            from bench.bench_scale_pipeline import bench_pipeline

            bench_pipeline(n, row, TreePeak, a.workers)
    if a.stage == "curated":
        bench_curated(a.n)


if __name__ == "__main__":
    main()
