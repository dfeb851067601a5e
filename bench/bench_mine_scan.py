"""Mining's streaming pass over pool assignment tables: rows/s and peak memory against a bare
read of the same columns of the same tables (measured in the same run).

    nice -n 10 env PYTHONPATH=. .venv/bin/python bench/bench_mine_scan.py --rows 2000000

Writes ``--rows`` synthetic POOL_ASSIGN rows (no images: hashes, captions, clusters, cosines
drawn at random) in tables of ``--table`` rows, a corpus of ``--clusters`` image clusters, and
runs :func:`mm_assets.core.mine.select.select` with a ``fill_to: median`` recipe (caption
length filter; language filter with ``--language``; dedup off: its cost depends on the rows
kept, not on the pool). Baseline: ``Store.read_table`` of the same columns, table by table.
Peak RSS is measured in a child process per variant (``bench/_rss.py``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

import numpy as np
import polars as pl

from mm_assets.core import layout, schemas
from mm_assets.core.commits import write_commit
from mm_assets.core.mine.pool import partition_key
from mm_assets.core.records import StageCounts
from mm_assets.core.storage import Store

WORDS = np.array(["a", "red", "green", "small", "old", "bright", "street", "river", "house", "window", "table", "light"])


def build(root: str, rows: int, table: int, k: int) -> None:
    store, rng = Store(root), np.random.default_rng(0)
    sizes = rng.integers(10, 400, k)
    store.write_npy(layout.centroids("image"), np.eye(k, 8, dtype=np.float32))
    keys = [f"c{i}" for i in range(int(sizes.sum()))]
    store.write_table(layout.CLUSTER_ASSIGNMENTS, pl.DataFrame({
        "key": keys, "space": ["image"] * len(keys),
        "cluster": np.repeat(np.arange(k), sizes).astype(np.int32),
        "distance": np.zeros(len(keys), np.float32)}, schema=schemas.CLUSTER_ASSIGNMENTS),
        schemas.CLUSTER_ASSIGNMENTS)
    for t, s0 in enumerate(range(0, rows, table)):
        n, stem = min(table, rows - s0), f"{t:05d}"
        cap = [" ".join(WORDS[rng.integers(0, len(WORDS), rng.integers(2, 12))]) for _ in range(n)]
        c1 = rng.integers(0, k, n).astype(np.int32)
        df = pl.DataFrame({
            "key": [f"p/{stem}/{i}" for i in range(n)], "pool": "p", "shard": stem,
            "wds_key": [str(i) for i in range(n)], "caption": cap,
            "bytes_hash": [f"{x:032x}" for x in rng.integers(0, 2**62, n)],
            "pixel_hash": [f"{x:032x}" for x in rng.integers(0, 2**62, n)],
            "phash": rng.integers(-2**62, 2**62, n), "phash_flip": rng.integers(-2**62, 2**62, n),
            "width": np.full(n, 256, np.int32), "height": np.full(n, 256, np.int32),
            "row": np.arange(n, dtype=np.int32), "cluster": c1,
            "sim": rng.uniform(0, 0.8, n).astype(np.float32), "cluster2": (c1 + 1) % k,
            "sim2": rng.uniform(0, 0.5, n).astype(np.float32),
            "span_start": np.arange(n, dtype=np.int64) * 20480,
            "span_end": np.arange(1, n + 1, dtype=np.int64) * 20480}, schema=schemas.POOL_ASSIGN)
        store.write_table(layout.pool_assign("p", stem), df, schemas.POOL_ASSIGN)
        write_commit(store, "pool_assign", partition_key("p", stem), StageCounts(n, n))
    store.write_bytes(layout.pool_spec("p"), b"name: p\nprefixes: [/nonexistent]\n")


def run(root: str, variant: str, language: bool) -> dict:
    """One variant in this process: ``select`` or ``read`` (the baseline)."""
    from mm_assets.core.mine.recipe import parse_mining_recipe
    from mm_assets.core.mine.select import READ, pool_tables, select

    store = Store(root)
    t0 = time.perf_counter()
    if variant == "read":
        n = sum(store.read_table(layout.pool_assign(p, s), READ).select(list(READ)).height
                for p, s in pool_tables(store, ("p",)))
        return {"rows": n, "seconds": time.perf_counter() - t0}
    lang = ", languages: [en]" if language else ""
    r = parse_mining_recipe(f"name: b\npools: [p]\nfill_to: median\nmin_sim: 0.3\n"
                            f"caption: {{min_chars: 8{lang}}}\n"
                            "dedup: {exact: false, phash_radius: null, cosine: null}\n")
    sel = select(store, r)
    return {"rows": sel.counts.n_in, "seconds": time.perf_counter() - t0,
            "taken": sel.counts.n_out, "kept": sel.peak_kept, "rounds": sel.rounds}


def child(root: str, variant: str, language: bool) -> dict:
    code = ("import json,resource,sys; sys.path.insert(0,'bench'); "
            "from bench_mine_scan import run; "
            f"out = run({root!r}, {variant!r}, {language}); "
            "out['rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024; "
            "print(json.dumps(out))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--table", type=int, default=50_000)
    ap.add_argument("--clusters", type=int, default=200)
    ap.add_argument("--language", action="store_true", help="also the CLD2 language filter")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mine-scan-") as tmp:
        t0 = time.perf_counter()
        build(tmp, a.rows, a.table, a.clusters)
        print(f"{a.rows:,} rows in {-(-a.rows // a.table)} tables written in "
              f"{time.perf_counter() - t0:.0f} s")
        base = child(tmp, "read", False)
        sel = child(tmp, "select", a.language)
        for name, r in (("bare read of the columns", base), ("select (scan + top-k)", sel)):
            print(f"{name:>26}: {r['seconds']:7.2f} s  {r['rows'] / r['seconds']:>11,.0f} "
                  f"rows/s  peak RSS {r['rss_mib']} MiB")
        print(f"select / bare read time: {sel['seconds'] / base['seconds']:.2f}x; taken "
              f"{sel['taken']:,}, at most {sel['kept']:,} rows kept, {sel['rounds']} round(s)")


if __name__ == "__main__":
    main()
