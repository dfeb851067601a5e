"""Mining on what pool_assign really writes: a generated pool (mm_assets.core.mine.poolgen,
with exact, resized and mirrored copies of corpus images) embedded with the corpus encoder
(EfficientNet-Lite0, ImageNet weights, CPU) and assigned by ``run_pool_shard``; the selection
takes none of the copies (ground truth from the generator, not from the tables) and its
counts reconcile."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

from mm_assets.core import layout, schemas
from mm_assets.core.commits import write_commit
from mm_assets.core.dedup.exact import hash_samples
from mm_assets.core.ingest.images import DEFAULT_MAX_PIXELS
from mm_assets.core.mine.assign import AssignConfig
from mm_assets.core.mine.output import write_mined
from mm_assets.core.mine.pool import add_pool, all_partition_keys
from mm_assets.core.mine.pool_encoder import check_pool_encoder
from mm_assets.core.mine.pool_shard import load_centroids, run_pool_shard
from mm_assets.core.mine.poolgen import PoolGenConfig, corpus_images, generate_pool
from mm_assets.core.mine.recipe import parse_mining_recipe
from mm_assets.core.mine.select import select
from mm_assets.core.records import StageCounts
from mm_assets.core.semantic.embed_cache import encoder_fingerprint
from mm_assets.core.shards import read_samples

sys.path.insert(0, str(Path(__file__).parent))
from pool_world import SHARD, build_corpus, encoder


def test_mining_a_really_assigned_pool_takes_no_copy(tmp_path):
    store, keys = build_corpus(str(tmp_path / "root"), per_kind=2)  # cluster i = corpus key i
    with store.open_read(layout.raw_shard(SHARD)) as f:
        corpus = list(read_samples(f))
    store.write_table(layout.image_hashes(SHARD), hash_samples(corpus, 10**8),
                      schemas.IMAGE_HASHES)
    write_commit(store, "image_hashes", SHARD, StageCounts(len(corpus), len(corpus)))
    store.write_table(layout.CLUSTER_ASSIGNMENTS, pl.DataFrame({
        "key": keys, "space": ["image"] * len(keys), "cluster": list(range(len(keys))),
        "distance": [0.0] * len(keys)}, schema=schemas.CLUSTER_ASSIGNMENTS),
        schemas.CLUSTER_ASSIGNMENTS)
    truth = generate_pool(str(tmp_path / "pool"), PoolGenConfig(
        n=30, shard_size=20, n_exact=3, n_resized=3, n_flipped=2, size=96, seed=5),
        corpus_images(store, 10))
    add_pool(store, "gen", [str(tmp_path / "pool")])
    enc = encoder()
    identity = check_pool_encoder(store, enc, encoder_fingerprint(enc, True, DEFAULT_MAX_PIXELS))
    index, cents = load_centroids(store)
    for key in all_partition_keys(store):
        counts, _ = run_pool_shard(store, key, enc, index, cents, identity, AssignConfig())
        write_commit(store, "pool_assign", key, counts)

    r = parse_mining_recipe("name: real\npools: [gen]\ncounts: {" + ", ".join(
        f"{c}: 20" for c in range(len(keys))) + "}\nmin_sim: -1\n"
        "dedup: {exact: true, phash_radius: 6, cosine: 0.95}\nseed: 1\nshard_size: 8\n")
    sel = select(store, r)
    _, man = write_mined(store, r, sel)
    assert man["reconciles"] and sel.counts.n_in == 38  # 30 drawn + 8 copies
    copies = truth.filter(pl.col("copy_of").is_not_null())
    assert copies.height == 8
    taken = set(sel.rows["wds_key"])
    assert not taken & set(copies["wds_key"])  # no copy of a corpus image mined
    rej = man["totals"]["rejected"]
    assert rej.get("dup_corpus_exact", 0) >= 3  # the exact copies, by bytes / pixels
    assert sum(v for k, v in rej.items() if k.startswith("dup_corpus")) >= 8
    assert man["totals"]["taken"] == 38 - sum(rej.values()) - man["totals"]["not_needed"]
    mined = [s for rel in man["shards"] for s in read_samples(store.open_read(rel))]
    assert {s.metadata["pool_key"].rsplit("/", 1)[1] for s in mined} == taken
