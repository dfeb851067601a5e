"""Mining a generated pool of ≥ 20k images by cluster: per-cluster table, independent checks,
reproducibility, and the selection's time and memory.

    nice -n 10 env PYTHONPATH=. .venv/bin/python bench/mine_pool_demo.py --pool 20000

Builds a corpus + pool root with ``tests/core/mine/mining_world.py`` (real hashes; a stand-in
encoder — the 16×16 grey thumbnail — so the semantic check can be recomputed from the mined
bytes here; the pool holds exact, resized and mirrored copies of corpus images and exact
duplicates within itself), mines it with a ``fill_to: median`` recipe, prints per cluster
wanted / candidates / taken / rejected / shortfall, then checks from the mined shards' bytes
alone (not from the selection's tables): no exact (bytes or pixels), perceptual (pHash or its
mirror within the radius) or semantic (cosine ≥ threshold against EVERY corpus image, not
only the cluster's) duplicate of the corpus or among the mined; none of the ground-truth copies
taken; the same seed selecting the same images. Exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "core" / "mine"))

from mining_world import build_world, embed

from mm_assets.core import layout
from mm_assets.core.dedup.hashing import hash_image
from mm_assets.core.mine.output import write_mined
from mm_assets.core.mine.recipe import parse_mining_recipe
from mm_assets.core.mine.select import select
from mm_assets.core.shards import read_samples

RADIUS, COSINE = 6, 0.9
F16 = 2e-3  # the selection compares the stored float16 vectors: recomputed cosines differ ≤ ~1e-3


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(-1)


def _near(a: np.ndarray, b: np.ndarray, radius: int) -> np.ndarray:
    """(len(a),) bool: a[i] within ``radius`` bits of some b[j] (brute force, blocks)."""
    out = np.zeros(a.size, bool)
    for i in range(0, a.size, 512):
        d = _popcount(a[i:i + 512, None] ^ b[None, :])
        out[i:i + 512] = (d <= radius).any(1)
    return out


def check(w, name: str) -> list[str]:
    """Independent checks on the mined shards (see the module doc); returns the failures."""
    store, bad = w.store, []
    mined = [s for rel in store.read_json(layout.mined_manifest(name))["shards"]
             for s in read_samples(store.open_read(rel))]
    ch = [hash_image(b, 10**8) for b in w.corpus.values()]
    mh = [hash_image(s.images[0], 10**8) for s in mined]
    exact = {h.bytes_hash for h in ch} | {h.pixel_hash for h in ch}
    if any(h.bytes_hash in exact or h.pixel_hash in exact for h in mh):
        bad.append("exact duplicate of a corpus image")
    if len({h.pixel_hash for h in mh}) != len(mh):
        bad.append("exact duplicates among the mined")
    cp = np.array([h.phash for h in ch if h.phash is not None], np.int64).view(np.uint64)
    ok = [h for h in mh if h.phash is not None]
    mp = np.array([h.phash for h in ok], np.int64).view(np.uint64)
    mf = np.array([h.phash_flip for h in ok], np.int64).view(np.uint64)
    if (_near(mp, cp, RADIUS) | _near(mf, cp, RADIUS)).any():
        bad.append("perceptual duplicate of a corpus image")
    among = False
    for i in range(0, mp.size, 512):  # blocks: N² pairs never held at once
        d = np.minimum(_popcount(mp[i:i + 512, None] ^ mp[None, :]),
                       _popcount(mf[i:i + 512, None] ^ mp[None, :]))
        d[np.arange(d.shape[0]), np.arange(i, i + d.shape[0])] = 64
        among |= bool((d <= RADIUS).any())
    if among:
        bad.append("perceptual duplicates among the mined")
    cv = np.stack([embed(b) for b in w.corpus.values()])
    mv = np.stack([embed(s.images[0]) for s in mined])
    worst_c = worst_m = -1.0
    for i in range(0, len(mv), 2048):
        worst_c = max(worst_c, float((mv[i:i + 2048] @ cv.T).max()))
        sims = mv[i:i + 2048] @ mv.T
        sims[np.arange(sims.shape[0]), np.arange(i, i + sims.shape[0])] = -1
        worst_m = max(worst_m, float(sims.max()))
    if worst_c >= COSINE + F16:
        bad.append(f"semantic duplicate of a corpus image (max cos {worst_c:.3f})")
    if worst_m >= COSINE + F16:
        bad.append(f"semantic duplicates among the mined (max cos {worst_m:.3f})")
    print(f"max cosine mined-corpus {worst_c:.4f}, mined-mined {worst_m:.4f} "
          f"(threshold {COSINE})")
    copies = {k for k, (how, _) in w.copies.items() if how != "pool_dup"}
    if {s.metadata["pool_key"] for s in mined} & copies:
        bad.append("a ground-truth copy of a corpus image was taken")
    print(f"checked {len(mined)} mined images against {len(w.corpus)} corpus images "
          f"({len(copies)} corpus copies in the pool)")
    return bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", type=int, default=20000, help="generated pool images")
    ap.add_argument("--corpus", type=int, default=1500)
    ap.add_argument("--kinds", type=int, default=12, help="corpus clusters")
    ap.add_argument("--shard", type=int, default=2000, help="pool images per shard")
    ap.add_argument("--fill-to", default="median", help="median or a cluster size")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mine-demo-") as tmp:
        t0 = time.perf_counter()
        w = build_world(f"{tmp}/root", f"{tmp}/pool", n_corpus=args.corpus, n_pool=args.pool,
                        kinds=args.kinds, pool_shard=args.shard, corpus_shard=500)
        print(f"world: {args.corpus} corpus images, {args.pool} pool images (+ in-pool "
              f"duplicates) in {time.perf_counter() - t0:.0f} s")
        r = parse_mining_recipe(
            f"name: demo\npools: [testpool]\nfill_to: {args.fill_to}\nmin_sim: 0.2\n"
            f"caption: {{min_chars: 10, languages: [en]}}\n"
            f"dedup: {{exact: true, phash_radius: {RADIUS}, cosine: {COSINE}}}\nseed: 0\n"
            f"shard_size: 1000\n")
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t0 = time.perf_counter()
        sel = select(w.store, r)
        t_sel = time.perf_counter() - t0
        paths, man = write_mined(w.store, r, sel)
        t_all = time.perf_counter() - t0
        print(f"\nselect: {sel.counts.n_in} pool rows in {t_sel:.2f} s "
              f"({sel.counts.n_in / t_sel:,.0f} rows/s), {sel.rounds} round(s), at most "
              f"{sel.peak_kept} rows kept; + write {len(paths)} shard(s): {t_all:.2f} s; "
              f"peak RSS {max(rss0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) // 1024}"
              f" MiB (world building included)")
        print(f"\n{'cluster':>7} {'corpus':>6} {'wanted':>6} {'cand.':>6} {'taken':>6} "
              f"{'short':>5} {'not needed':>10}  rejected")
        for c, t in man["clusters"].items():
            rej = ", ".join(f"{k} {v}" for k, v in t["rejected"].items())
            print(f"{c:>7} {w.sizes[int(c)]:>6} {t['wanted']:>6} {t['candidates']:>6} "
                  f"{t['taken']:>6} {t['shortfall']:>5} {t['not_needed']:>10}  {rej}")
        tot = man["totals"]
        print(f"{'total':>7} {sum(w.sizes.values()):>6} {tot['wanted']:>6} "
              f"{tot['candidates']:>6} {tot['taken']:>6} {tot['shortfall']:>5} "
              f"{tot['not_needed']:>10}  {tot['rejected']}")
        bad = [] if man["reconciles"] else ["counts do not reconcile"]
        bad += [f"cluster {c}: taken {t['taken']} + shortfall {t['shortfall']} != wanted"
                for c, t in man["clusters"].items() if t["taken"] + t["shortfall"] != t["wanted"]]
        bad += check(w, "demo")
        again = select(w.store, r).rows["key"].to_list()
        if again != sel.rows["key"].to_list():
            bad.append("the same seed selected other images")
        print("same seed, same selection:", again == sel.rows["key"].to_list())
        print("FAILED: " + "; ".join(bad) if bad else "all checks passed")
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
