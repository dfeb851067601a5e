"""``mined`` reading pool shards by the byte spans pool_assign recorded vs scanning each shard
from the start up to its last selected sample (the behaviour before spans; still the fallback
for tables without them): bytes read, seconds, and the same output bytes.

    nice -n 10 env PYTHONPATH=. .venv/bin/python bench/bench_mine_spans.py --pool 10000

Builds the stand-in corpus + pool of ``tests/core/mine/mining_world.py`` (48×48 PNG + caption
per pool sample, ``--shard`` samples per tar), then for each ``--take`` (images wanted per
cluster, ``counts`` recipe over every cluster) writes the mined shards twice: with spans,
then selecting again with the assignment tables' span columns dropped (as tables written
before spans were recorded; the same rows are selected). Bytes: what was requested (spans,
merged when closer than ``SPAN_GAP``) or consumed by the tar reader (scan), from the
manifest's ``pool_reads``.
Local disk, page cache warm after the first read: on an object store each scanned byte is
also a transferred byte, and span reads are concurrent ``cat_ranges`` requests.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "core" / "mine"))

from mining_world import build_world

from mm_assets.core import layout, schemas
from mm_assets.core.commits import committed
from mm_assets.core.mine.output import write_mined
from mm_assets.core.mine.recipe import parse_mining_recipe
from mm_assets.core.mine.select import select


def _mined_bytes(store, name: str) -> list[bytes]:
    return [store.read_bytes(rel) for rel in store.read_json(layout.mined_manifest(name))["shards"]]


def _drop_spans(store) -> dict[str, bytes]:
    saved = {}
    for key in committed(store, "pool_assign"):
        pool, stem = key.split("__", 1)
        rel = layout.pool_assign(pool, stem)
        saved[rel] = store.read_bytes(rel)
        t = store.read_table(rel, schemas.POOL_ASSIGN)
        store.write_parquet(rel, t.drop("span_start", "span_end"))
    return saved


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", type=int, default=10000)
    ap.add_argument("--shard", type=int, default=2000)
    ap.add_argument("--kinds", type=int, default=8)
    ap.add_argument("--take", default="5,50,400", help="images wanted per cluster, per run")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mine-spans-") as tmp:
        t0 = time.perf_counter()
        w = build_world(f"{tmp}/root", f"{tmp}/pool", n_corpus=400, n_pool=args.pool,
                        kinds=args.kinds, pool_shard=args.shard, corpus_shard=200)
        pool_bytes = sum(p.stat().st_size for p in Path(f"{tmp}/pool").glob("*.tar"))
        print(f"world: {args.pool} pool images, {pool_bytes / 2**20:.1f} MiB of tars, "
              f"{time.perf_counter() - t0:.0f} s")
        print(f"{'take/cl':>7} {'taken':>6} | {'span MiB':>8} {'reqs':>5} {'s':>6} | "
              f"{'scan MiB':>8} {'s':>6} | {'bytes ratio':>11} {'time ratio':>10} same")
        ok = True
        for take in (int(x) for x in args.take.split(",")):
            counts = ", ".join(f"{c}: {take}" for c in range(args.kinds))
            r = parse_mining_recipe(f"name: b{take}\npools: [testpool]\ncounts: {{{counts}}}\n"
                                    "min_sim: -1\ndedup: {exact: true}\nseed: 0\n"
                                    "shard_size: 5000\n")
            sel = select(w.store, r)
            t0 = time.perf_counter()
            _, man = write_mined(w.store, r, sel)
            t_span = time.perf_counter() - t0
            by_span = _mined_bytes(w.store, r.name)
            saved = _drop_spans(w.store)
            try:
                sel_old = select(w.store, r)  # the same rows, without spans
                assert sel_old.rows["key"].to_list() == sel.rows["key"].to_list()
                t0 = time.perf_counter()
                _, man_scan = write_mined(w.store, r, sel_old)
                t_scan = time.perf_counter() - t0
            finally:
                for rel, b in saved.items():
                    w.store.write_bytes(rel, b)
            same = _mined_bytes(w.store, r.name) == by_span
            ok &= same
            a, b = man["pool_reads"], man_scan["pool_reads"]
            assert a["scanned_shards"] == 0 and b["span_samples"] == 0, (a, b)
            print(f"{take:>7} {man['totals']['taken']:>6} | {a['bytes_read'] / 2**20:>8.2f} "
                  f"{a['requests']:>5} {t_span:>6.2f} | {b['bytes_read'] / 2**20:>8.2f} "
                  f"{t_scan:>6.2f} | {a['bytes_read'] / b['bytes_read']:>11.3f} "
                  f"{t_span / t_scan:>10.2f} {same}")
        print("same output bytes in every run" if ok else "FAILED: outputs differ")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
