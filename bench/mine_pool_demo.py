"""Mining a generated pool of ≥ 20k images by cluster: per-cluster table, independent checks,
reproducibility, and the selection's time and memory.

    nice -n 10 env PYTHONPATH=. .venv/bin/python bench/mine_pool_demo.py --pool 20000
    nice -n 10 env PYTHONPATH=. HF_HUB_OFFLINE=1 .venv/bin/python bench/mine_pool_demo.py \
        --encoder efficientnet --pool 20000 --fill-to median,300

``--encoder stand-in`` (default, seconds): the corpus + pool root of
``tests/core/mine/mining_world.py`` (real hashes; a stand-in encoder — the 16×16 grey
thumbnail — written straight into the tables). ``--encoder efficientnet``: the root of
``bench/_mine_real_world.py`` — poolgen images (five kinds) with exact, resized and mirrored
copies of corpus images, every corpus and pool image embedded with EfficientNet-Lite0 (the
corpus encoder), corpus clusters by spherical k-means of those vectors, each pool shard run
through ``pool_assign``'s code (read, hash, embed, assign); ≈ 30 images/s on 2 idle cores.
Then it mines the pool with one ``fill_to`` recipe per value of ``--fill-to``, prints per cluster
wanted / candidates / taken / rejected / shortfall, then checks from the mined shards' bytes
alone (not from the selection's tables): no exact (bytes or pixels), perceptual (pHash or its
mirror within the radius) or semantic (cosine ≥ threshold against EVERY corpus image, not
only the cluster's) duplicate of the corpus or among the mined; none of the ground-truth copies
taken; the same seed selecting the same images (another seed: other images). The semantic
vectors of the checks are recomputed from the bytes with the same encoder. Also measured: the
recall of the selection's two-cluster cosine search against an exhaustive one (pool rows with a
corpus image at cosine ≥ threshold found within their nearest + second-nearest clusters; mined
images an exhaustive search would have caught). Exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "core" / "mine"))

from mining_world import build_world, embed

from mm_assets.core import layout, schemas
from mm_assets.core.commits import committed
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


def check(w, name: str, embed_many) -> list[str]:
    """Independent checks on the mined shards (see the module doc); returns the failures.
    ``embed_many(list of bytes) -> (N, D) float32`` L2-normalised: the encoder, run again."""
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
    t0 = time.perf_counter()
    cv = embed_many(list(w.corpus.values()))
    mv = embed_many([s.images[0] for s in mined])
    print(f"re-embedded {len(cv)} corpus + {len(mv)} mined images from their bytes in "
          f"{time.perf_counter() - t0:.0f} s")
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
    print(f"mined images with cosine >= {COSINE} to some corpus image (exhaustive, "
          f"recomputed): {int(((mv @ cv.T) >= COSINE).any(1).sum()) if len(mv) else 0}")
    copies = {k for k, (how, _) in w.copies.items() if how != "pool_dup"}
    if {s.metadata["pool_key"] for s in mined} & copies:
        bad.append("a ground-truth copy of a corpus image was taken")
    print(f"checked {len(mined)} mined images against {len(w.corpus)} corpus images "
          f"({len(copies)} corpus copies in the pool)")
    return bad


def recall(w, threshold: float, mined_keys: list[str], m: int) -> None:
    """The selection's cosine search within each row's ``m`` nearest clusters (and within 2,
    as before ``dedup.cosine_clusters``) vs exhaustive, on the stored vectors the selection
    reads: every pool row against every corpus image."""
    from mm_assets.core.mine.select_dups import image_centroids, nearest_clusters

    store, cents = w.store, image_centroids(w.store)
    cl = store.read_table(layout.CLUSTER_ASSIGNMENTS, schemas.CLUSTER_ASSIGNMENTS)
    cl = dict(zip(cl["key"], cl["cluster"], strict=True))
    cv, cc = [], []
    for shard in committed(store, "embeddings"):
        keys = store.read_table(layout.embedding_keys(shard, "image"), schemas.EMBEDDING_KEYS)
        cv.append(np.asarray(store.read_npy(layout.embedding_vectors(shard, "image")),
                             np.float32))
        cc += [cl[k] for k in keys["key"]]
    cv, cc = np.concatenate(cv), np.array(cc)
    n, ex, found, missed = 0, 0, {2: 0, m: 0}, {2: set(), m: set()}
    for key in committed(store, "pool_assign"):
        pool, stem = key.split("__", 1)
        keys = store.read_table(layout.pool_assign(pool, stem), schemas.subset(
            schemas.POOL_ASSIGN, "key"))["key"]
        x = np.asarray(store.read_npy(layout.pool_vectors(pool, stem)), np.float32)
        hit = (x @ cv.T) >= threshold
        e = hit.any(1)
        n, ex = n + len(keys), ex + int(e.sum())
        for k in found:
            near = (cc[None, :, None] == nearest_clusters(x, cents, k)[:, None, :]).any(2)
            f = (hit & near).any(1)
            found[k] += int(f.sum())
            missed[k].update(keys.filter(pl.Series(e & ~f)).to_list())
    for k in sorted(found):
        print(f"cosine >= {threshold} to a corpus image, {n} pool rows: exhaustive {ex}, within "
              f"the {k} nearest clusters {found[k]} -> recall {found[k] / max(ex, 1):.4f} "
              f"({ex - found[k]} missed); mined images among those missed: "
              f"{len(missed[k] & set(mined_keys))}")


def _world(args, tmp: str):
    if args.encoder == "stand-in":
        w = build_world(f"{tmp}/root", f"{tmp}/pool", n_corpus=args.corpus, n_pool=args.pool,
                        kinds=args.kinds, pool_shard=args.shard, corpus_shard=500)
        return w, lambda blobs: np.stack([embed(b) for b in blobs])
    from _mine_real_world import build_real_world, load_real_world
    from _mine_real_world import embed as real_embed

    if args.reuse:
        w = load_real_world(f"{args.reuse}/root", f"{args.reuse}/pool")
        return w, lambda blobs: real_embed(w.enc, blobs) if blobs else np.zeros((0, 1280))
    w = build_real_world(f"{tmp}/root", f"{tmp}/pool", n_corpus=args.corpus, n_pool=args.pool,
                         k=args.kinds, pool_shard=args.shard, n_copies=args.copies,
                         size=args.size, log=lambda m: print(m, flush=True))
    print(f"pool_assign: {w.assign_seconds['read_hash_s']:.0f} s read+hash, "
          f"{w.assign_seconds['embed_s']:.0f} s embed, {w.assign_seconds['assign_s']:.1f} s "
          f"assign; quarantined {dict(w.quarantined)}")
    return w, lambda blobs: real_embed(w.enc, blobs) if blobs else np.zeros((0, 1280))


def mine(w, fill_to: str, embed_many) -> list[str]:
    """Mine with ``fill_to``, print the table and the checks; returns the failures."""
    def recipe(seed: int):
        return parse_mining_recipe(
            f"name: demo\npools: [{w.pool}]\nfill_to: {fill_to}\nmin_sim: 0.2\n"
            f"caption: {{min_chars: 10, languages: [en]}}\n"
            f"dedup: {{exact: true, phash_radius: {RADIUS}, cosine: {COSINE}, "
            f"cosine_clusters: {w.cosine_clusters}}}\n"
            f"seed: {seed}\nshard_size: 1000\n")

    r = recipe(0)
    print(f"\n=== fill_to: {fill_to} ===")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    sel = select(w.store, r)
    t_sel = time.perf_counter() - t0
    paths, man = write_mined(w.store, r, sel)
    t_all = time.perf_counter() - t0
    print(f"select: {sel.counts.n_in} pool rows in {t_sel:.2f} s "
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
    bad += check(w, "demo", embed_many)
    recall(w, COSINE, sel.rows["key"].to_list(), w.cosine_clusters)
    again = select(w.store, r).rows["key"].to_list()
    if again != sel.rows["key"].to_list():
        bad.append("the same seed selected other images")
    other = select(w.store, recipe(1)).rows["key"].to_list()
    print(f"same seed, same selection: {again == sel.rows['key'].to_list()}; seed 1 shares "
          f"{len(set(other) & set(again))} of {len(again)} keys with seed 0")
    return [f"fill_to {fill_to}: {b}" for b in bad]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoder", choices=["stand-in", "efficientnet"], default="stand-in")
    ap.add_argument("--pool", type=int, default=20000, help="generated pool images")
    ap.add_argument("--corpus", type=int, default=1500)
    ap.add_argument("--kinds", type=int, default=12, help="corpus clusters")
    ap.add_argument("--shard", type=int, default=2000, help="pool images per shard")
    ap.add_argument("--copies", type=int, default=300,
                    help="efficientnet: exact, resized and mirrored copies of corpus images "
                         "(each)")
    ap.add_argument("--size", type=int, default=160, help="efficientnet: image side (px)")
    ap.add_argument("--fill-to", default="median",
                    help="median or a cluster size; comma-separated: one recipe each")
    ap.add_argument("--cosine-clusters", type=int, default=4,
                    help="recipe dedup.cosine_clusters (nearest corpus clusters compared)")
    ap.add_argument("--keep", default="", help="efficientnet: build the world in this folder "
                    "and keep it (DIR/root, DIR/pool)")
    ap.add_argument("--reuse", default="", help="efficientnet: mine a world kept by --keep")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mine-demo-") as tmp:
        t0 = time.perf_counter()
        w, embed_many = _world(args, args.keep or tmp)
        w.cosine_clusters = args.cosine_clusters
        print(f"world ({args.encoder}): {len(w.corpus)} corpus images, {args.pool} pool "
              f"images (+ copies / in-pool duplicates) in {time.perf_counter() - t0:.0f} s")
        bad = []
        for fill_to in args.fill_to.split(","):
            bad += mine(w, fill_to.strip(), embed_many)
        print("FAILED: " + "; ".join(bad) if bad else "all checks passed")
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
