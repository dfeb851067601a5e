"""Near-duplicate grouping at 100k / 400k / 1M image hashes: index vs brute force.

Usage: .venv/bin/python bench/bench_neardup.py [--sizes 100000,400000,1000000]
       [--brute-max 400000] [--radius 6] [--precision-n 20000]

Synthetic MAmmoTH-like hash tables (``synthetic_hashes``): 10% text-only samples, 60% of
image samples reuse an earlier sample's image (exact repeat), 3% carry two images, 20% of
distinct images are variants of another (0-8 random bits flipped, like resized/re-encoded
copies). Each configuration runs in its own subprocess and reports seconds and peak RSS above
the interpreter baseline (hash table already built). ``near_duplicate_groups`` with
``method="index"`` (multi-index hashing) against ``method="brute"`` (FAISS flat range search,
same grouping); the groups must be identical where brute force runs (asserted). Today's
implementation before this change (brute force + transitive components) runs at the smallest
size as a reference.

A precision section compares star grouping with transitive components at radius 6 and 16
on ``--precision-n`` samples: pair precision against the planted families.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def synthetic_hashes(n: int, seed: int = 0) -> pl.DataFrame:
    """``n`` samples: ``key`` Utf8, ``phashes`` List[Int64], ``family`` Int64 (planted
    picture of the first image; -1 for text-only samples)."""
    rng = np.random.default_rng(seed)
    n_img = int(n * 0.9)
    n_distinct = max(2, int(n_img * 0.4))
    codes = rng.integers(-2**63, 2**63 - 1, n_distinct, dtype=np.int64, endpoint=True)
    family = np.arange(n_distinct)
    var = np.flatnonzero(rng.random(n_distinct) < 0.2)[1:]
    src = (rng.random(var.size) * var).astype(np.int64)  # an earlier image
    noise = np.zeros(var.size, np.uint64)
    for _ in range(8):
        bit = np.uint64(1) << rng.integers(0, 64, var.size).astype(np.uint64)
        noise |= np.where(rng.random(var.size) < 0.5, bit, np.uint64(0))
    for v, s, x in zip(var, src, noise.view(np.int64), strict=True):  # in order: chains resolve
        codes[v], family[v] = codes[s] ^ x, family[s]
    # first use of each distinct image in order, then repeats drawn from earlier samples
    pick = np.empty(n_img, np.int64)
    first = np.sort(rng.choice(n_img, n_distinct, replace=False))
    pick[first] = np.arange(n_distinct)
    rest = np.setdiff1d(np.arange(n_img), first)
    last_seen = np.maximum.accumulate(np.where(np.isin(np.arange(n_img), first),
                                               np.searchsorted(first, np.arange(n_img)), 0))
    pick[rest] = (rng.random(rest.size) * (last_seen[rest] + 1)).astype(np.int64)
    lists = [[int(codes[p])] for p in pick]
    for i in np.flatnonzero(rng.random(n_img) < 0.03):
        lists[i].append(int(codes[rng.integers(0, n_distinct)]))
    lists += [[] for _ in range(n - n_img)]
    fam = np.concatenate([family[pick], np.full(n - n_img, -1)])
    keys = [f"s{i:08d}" for i in rng.permutation(n)]
    return pl.DataFrame({"key": keys, "phashes": lists, "family": fam},
                        schema={"key": pl.Utf8, "phashes": pl.List(pl.Int64),
                                "family": pl.Int64})


ONE = """
import json, sys, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
from _rss import Peak
from bench_neardup import synthetic_hashes, legacy_groups
from mm_assets.core.dedup.near import near_duplicate_groups
table = synthetic_hashes({n})
with Peak() as p:
    t = time.perf_counter()
    if {method!r} == "legacy":
        g = legacy_groups(table, {radius})
    else:
        g = near_duplicate_groups(table, {radius}, method={method!r})
    dt = time.perf_counter() - t
if {out!r}:
    g.write_parquet({out!r})
print(json.dumps({{"seconds": dt, "peak_mb": p.extra, "grouped": g.height,
                  "groups": g["near_group"].n_unique()}}))
"""


def legacy_groups(hashes: pl.DataFrame, threshold: int) -> pl.DataFrame:
    """Today's implementation before the index (brute force + connected components)."""
    from mm_assets.core.dedup.hamming import radius_pairs

    img = hashes.select("key", "phashes").explode("phashes").drop_nulls("phashes")
    keys = img["key"].to_list()
    codes = img["phashes"].to_numpy().astype(np.int64)
    i, j = radius_pairs(codes, threshold, "brute")  # all rows, repeats included, as before
    return pl.DataFrame({"key": keys, "root": _components(len(keys), i, j, keys)}).with_columns(
        pl.col("key").min().over("root").alias("near_group"),
        pl.len().over("root").alias("near_group_size")).filter(
        pl.col("near_group_size") > 1).unique("key")


def _components(n: int, i: np.ndarray, j: np.ndarray, keys: list[str]) -> list[int]:
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    by_key: dict[str, int] = {}
    pairs = list(zip(i.tolist(), j.tolist(), strict=True))
    for x, k in enumerate(keys):
        if k in by_key:
            pairs.append((by_key[k], x))
        by_key[k] = x
    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [find(x) for x in range(n)]


def run_one(n: int, method: str, radius: int, out: str = "") -> dict:
    code = ONE.format(root=str(ROOT), bench=str(ROOT / "bench"), n=n, method=method,
                      radius=radius, out=out)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, check=False)
    if res.returncode:
        raise RuntimeError(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def precision(n: int) -> list[tuple[int, str, float, int]]:
    """Pair precision (same planted family) of star groups and of transitive components,
    over single-image samples: ``(radius, grouping, precision, samples grouped)``."""
    from mm_assets.core.dedup.near import near_duplicate_groups

    rows = synthetic_hashes(n, seed=1).filter(pl.col("phashes").list.len() == 1)
    out = []
    for radius in (6, 16):
        for name, fn in (("star", near_duplicate_groups), ("transitive", legacy_groups)):
            g = fn(rows, radius).join(rows.select("key", "family"), on="key")
            per = g.group_by("near_group", "family").len().group_by("near_group").agg(
                same=(pl.col("len") * (pl.col("len") - 1) // 2).sum(), n=pl.col("len").sum())
            total = per.select((pl.col("n") * (pl.col("n") - 1) // 2).sum()).item()
            out.append((radius, name, per["same"].sum() / max(total, 1), g.height))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,400000,1000000")
    ap.add_argument("--brute-max", type=int, default=400_000)
    ap.add_argument("--radius", type=int, default=6)
    ap.add_argument("--precision-n", type=int, default=20_000)
    args = ap.parse_args()
    sizes = [int(x) for x in args.sizes.split(",")]
    print(f"radius {args.radius}; seconds / peak RSS above baseline (MB)")
    print(f"{'hashes':>9} {'method':<28}{'seconds':>9}{'peak MB':>9}{'grouped':>10}{'groups':>9}")
    prev = None
    with tempfile.TemporaryDirectory() as d:
        for n in sizes:
            runs = [("index", "index (multi-index hashing)")]
            if n <= args.brute_max:
                runs.append(("brute", "brute force (FAISS flat)"))
            if n == sizes[0]:
                runs.append(("legacy", "before: brute + components"))
            res = {}
            for method, label in runs:
                out = str(Path(d) / f"{n}-{method}.parquet") if method != "legacy" else ""
                res[method] = r = run_one(n, method, args.radius, out)
                print(f"{n:>9,} {label:<28}{r['seconds']:>9.2f}{r['peak_mb']:>9.0f}"
                      f"{r['grouped']:>10,}{r['groups']:>9,}", flush=True)
            if "brute" in res:
                a = pl.read_parquet(Path(d) / f"{n}-index.parquet")
                b = pl.read_parquet(Path(d) / f"{n}-brute.parquet")
                assert a.equals(b), f"index and brute force groups differ at {n}"
                print(f"{'':>9} identical groups (index == brute): yes; "
                      f"speed-up {res['brute']['seconds'] / res['index']['seconds']:.1f}x")
            if prev:
                growth = np.log(res["index"]["seconds"] / prev[1]) / np.log(n / prev[0])
                print(f"{'':>9} growth exponent vs {prev[0]:,}: {growth:.2f} (2 = quadratic)")
            prev = (n, res["index"]["seconds"])
    print(f"\npair precision against planted families ({args.precision_n:,} samples):")
    for radius, name, p, grouped in precision(args.precision_n):
        print(f"  radius {radius:>2} {name:<11} precision {p:.3f}  samples grouped {grouped:,}")


if __name__ == "__main__":
    main()
