"""Mining selection on a small corpus + pool (mining_world): targets met or shortfall reported
per cluster, no mined image a duplicate of the corpus or of another mined image — recomputed
independently from the mined shards' bytes — and the same seed giving the same images."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mm_assets.core import layout, schemas
from mm_assets.core.dedup.hashing import hamming, hash_image
from mm_assets.core.mine.output import write_mined
from mm_assets.core.mine.recipe import parse_mining_recipe
from mm_assets.core.mine.select import priority, select
from mm_assets.core.shards import read_samples

sys.path.insert(0, str(Path(__file__).parent))
from mining_world import build_world, embed

RADIUS, COSINE = 6, 0.9
# the selection compares the float16 vectors pool_assign stored; recomputed float32 cosines
# differ by up to ~1e-3 (float16 has 11 significant bits): the independent check allows that
F16 = 2e-3
RECIPE = f"""
name: {{name}}
pools: [testpool]
counts: {{counts}}
min_sim: 0.2
caption: {{{{min_chars: 10, languages: [en]}}}}
dedup: {{{{exact: true, phash_radius: {RADIUS}, cosine: {COSINE}}}}}
seed: {{seed}}
shard_size: 64
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("mine")
    return build_world(str(base / "root"), str(base / "pool"), n_corpus=240, n_pool=900)


def _recipe(name="m", counts="{0: 60, 1: 60, 2: 100, 3: 400}", seed=3):
    return parse_mining_recipe(RECIPE.format(name=name, counts=counts, seed=seed))


def _mined(store, name):
    out = []
    for rel in store.read_json(layout.mined_manifest(name))["shards"]:
        with store.open_read(rel) as f:
            out.extend(read_samples(f))
    return out


def test_counts_meet_targets_or_report_the_shortfall(world):
    r = _recipe()
    sel = select(world.store, r)
    _, man = write_mined(world.store, r, sel)
    assert man["reconciles"] and sel.counts.reconciles()
    pool_rows = pl.concat([world.store.read_table(layout.pool_assign("testpool", s),
                                                  schemas.POOL_ASSIGN)
                           for s in ("00000", "00001", "00002", "00003")], how="vertical")
    assert sel.counts.n_in == pool_rows.height  # every pool row read once, accounted for
    per_cluster = dict(pool_rows["cluster"].value_counts().iter_rows())
    for c, t in man["clusters"].items():
        c = int(c)
        assert t["candidates"] == per_cluster.get(c, 0)
        assert t["candidates"] == t["taken"] + sum(t["rejected"].values()) + t["not_needed"]
        assert t["taken"] + t["shortfall"] == t["wanted"]
        if t["shortfall"]:  # short only when every candidate was examined and not taken
            assert t["not_needed"] == 0 and t["taken"] < t["wanted"]
        else:
            assert t["taken"] == t["wanted"]
    assert man["clusters"]["3"]["shortfall"] > 0  # 400 wanted from ~170 candidates
    assert man["clusters"]["0"]["shortfall"] == 0
    mined = _mined(world.store, "m")
    assert len(mined) == man["totals"]["taken"] == sel.rows.height
    by_cluster = pl.Series([s.metadata["cluster"] for s in mined]).value_counts()
    assert dict(by_cluster.iter_rows()) == {int(c): t["taken"] for c, t in
                                            man["clusters"].items() if t["taken"]}
    s = mined[0]
    assert s.conversations[0] == {"from": "human", "value": "<image>\nDescribe the image."}
    assert s.conversations[1]["from"] == "gpt" and len(s.conversations[1]["value"]) >= 10
    # every kind of copy reached the tests and was rejected for it
    rej = man["totals"]["rejected"]
    for why in ("dup_corpus_exact", "dup_corpus_phash", "dup_mined_exact", "caption_language",
                "caption_length"):
        assert rej.get(why, 0) > 0, (why, rej)


def test_no_mined_image_duplicates_the_corpus_or_another_mined_image(world):
    r = _recipe()
    write_mined(world.store, r, select(world.store, r))
    mined = _mined(world.store, "m")
    corpus = list(world.corpus.values())
    ch = [hash_image(b, 10**8) for b in corpus]
    mh = [hash_image(s.images[0], 10**8) for s in mined]
    exact = {h.bytes_hash for h in ch} | {h.pixel_hash for h in ch}
    assert not [h for h in mh if h.bytes_hash in exact or h.pixel_hash in exact]
    assert len({h.bytes_hash for h in mh}) == len(mh)
    assert len({h.pixel_hash for h in mh}) == len(mh)
    cph = [h.phash for h in ch if h.phash is not None]
    mph = [(h.phash, h.phash_flip) for h in mh if h.phash is not None]
    near = [(a, b) for a, f in mph for b in cph
            if hamming(a, b) <= RADIUS or hamming(f, b) <= RADIUS]
    assert not near
    among = [(i, j) for i, (a, f) in enumerate(mph) for j, (b, _) in enumerate(mph)
             if i != j and (hamming(a, b) <= RADIUS or hamming(f, b) <= RADIUS)]
    assert not among
    cv = np.stack([embed(b) for b in corpus])
    mv = np.stack([embed(s.images[0]) for s in mined])
    assert (mv @ cv.T).max() < COSINE + F16  # against the whole corpus, not only the same cluster
    sims = mv @ mv.T
    np.fill_diagonal(sims, -1)
    assert sims.max() < COSINE + F16
    # none of the pool's copies of corpus images (ground truth) was taken
    copies = {k for k, (how, _) in world.copies.items() if how != "pool_dup"}
    assert len(copies) > 50
    assert not {s.metadata["pool_key"] for s in mined} & copies


def test_each_mined_sample_holds_the_pool_sample_its_key_names(world):
    """Keys are made from the sorted rows (a fresh-user tryout found keys built from the
    unsorted ones: sample a held b's image and caption). Rows are shuffled on purpose."""
    import dataclasses

    from mm_assets.core.dedup.hashing import bytes_hash
    from mm_assets.core.mine.output import out_key

    r = _recipe(name="m_keys", counts="{0: 20, 2: 20, 3: 40}")
    sel = select(world.store, r)
    sel = dataclasses.replace(sel, rows=sel.rows.sample(fraction=1.0, shuffle=True, seed=1))
    write_mined(world.store, r, sel)
    by_key = {k: (h, c) for k, h, c in sel.rows.select("key", "bytes_hash", "caption").rows()}
    mined = _mined(world.store, "m_keys")
    assert len(mined) == sel.rows.height > 40
    for s in mined:
        pool, stem, wds_key = s.metadata["pool_key"].split("/", 2)
        assert s.key == out_key(pool, stem, wds_key)
        want_hash, want_caption = by_key[s.metadata["pool_key"]]
        assert bytes_hash(s.images[0]) == want_hash
        assert s.conversations[1]["value"] == want_caption


def test_a_pool_shard_damaged_after_its_selected_samples_still_mines(world, tmp_path):
    """Only the selected samples' byte spans are read: a tail cut after the last one is not
    read (the tryout's truncated shard failed every recipe); a cut before it fails naming
    the shard and the partition to re-materialize."""
    import shutil
    import tarfile

    from mm_assets.core.mine.select import MiningError

    r = _recipe(name="m_cut", counts="{2: 3}")
    sel = select(world.store, r)
    stem = sel.rows["shard"][0]
    wanted = set(sel.rows.filter(pl.col("shard") == stem)["wds_key"])
    src = Path(world.store.path("")).parent / "pool" / f"{stem}.tar"
    shutil.copy(src, tmp_path / "keep.tar")
    with tarfile.open(tmp_path / "keep.tar") as tf:
        members = tf.getmembers()
    last = max(i for i, m in enumerate(members) if m.name.split(".", 1)[0] in wanted)
    after = [m for m in members[last + 1:] if m.name.split(".", 1)[0] not in wanted]
    assert after, "the test needs members after the last selected sample"
    data = (tmp_path / "keep.tar").read_bytes()
    try:
        src.write_bytes(data[: after[0].offset_data + 10])  # cut inside the next sample
        write_mined(world.store, r, sel)
        assert len(_mined(world.store, "m_cut")) == sel.rows.height
        src.write_bytes(data[:700])  # cut inside the first member
        with pytest.raises(MiningError, match=rf"{stem}.tar is 700 bytes, shorter than the "
                           r"recorded span .* re-materialize pool_assign\[testpool__"):
            write_mined(world.store, r, sel)
    finally:
        shutil.copy(tmp_path / "keep.tar", src)


def test_same_seed_same_selection_other_seed_other(world):
    a = select(world.store, _recipe(seed=7)).rows["key"].to_list()
    b = select(world.store, _recipe(seed=7)).rows["key"].to_list()
    c = select(world.store, _recipe(seed=8)).rows["key"].to_list()
    assert a == b
    assert set(a) != set(c)


def test_selection_is_the_lowest_seeded_priorities_among_eligible(world):
    """Without rejections the k images of a cluster are the k lowest xxh3 priorities."""
    r = parse_mining_recipe("name: p\npools: [testpool]\ncounts: {1: 20}\nseed: 5\n"
                            "dedup: {exact: false, phash_radius: null, cosine: null}\n")
    got = select(world.store, r).rows["key"].to_list()
    rows = pl.concat([world.store.read_table(layout.pool_assign("testpool", s),
                                             schemas.POOL_ASSIGN)
                      for s in ("00000", "00001", "00002", "00003")]).filter(
        pl.col("cluster") == 1)
    order = np.argsort(priority(rows["key"].to_list(), 5))
    assert sorted(got) == sorted(rows["key"].gather(order[:20]).to_list())


def test_several_rounds_give_the_selection_of_one(world):
    """A small oversample leaves too few rows after rejections: further rounds over the rows
    of higher priority fill the clusters, with the same images as one large round."""
    r = _recipe(name="m2", counts="{0: 60, 1: 60, 2: 100}")
    many = select(world.store, r, oversample=0.2)
    one = select(world.store, r, oversample=4.0)
    assert many.rounds > 1 and one.rounds == 1 and many.peak_kept < one.peak_kept
    assert many.rows["key"].to_list() == one.rows["key"].to_list()
    assert {c: t.as_dict() for c, t in many.tallies.items()} == \
        {c: t.as_dict() for c, t in one.tallies.items()}
    strict = parse_mining_recipe("name: s\npools: [testpool]\ncounts: {0: 60}\n"
                                 "dedup: {cosine: 0.6}\n")  # every candidate a duplicate
    t = select(world.store, strict, oversample=1.0).tallies[0]
    assert t.taken == 0 and t.shortfall == 60 and t.not_needed == 0 and t.reconciles()


def test_an_image_whose_bytes_changed_since_assignment_fails_clearly(world, tmp_path):
    import shutil

    from mm_assets.core.mine.select import MiningError

    r = _recipe(name="m3", counts="{2: 5}")
    sel = select(world.store, r)
    stem = sel.rows["shard"][0]
    pool = Path(world.store.path("")).parent / "pool"
    src = pool / f"{stem}.tar"
    shutil.copy(src, tmp_path / "keep.tar")
    try:
        import tarfile
        with tarfile.open(tmp_path / "keep.tar") as tf, tarfile.open(src, "w") as out:
            for m in tf:
                data = tf.extractfile(m).read()
                if m.name.endswith(".png"):
                    data = data + b"\0"
                m.size = len(data)
                out.addfile(m, io.BytesIO(data))
        with pytest.raises(MiningError, match="changed since pool_assign"):
            write_mined(world.store, r, sel)
    finally:
        shutil.copy(tmp_path / "keep.tar", src)


def test_a_near_copy_of_an_image_taken_earlier_is_rejected_whichever_its_order():
    """pHash pairs count both ways: the second of a pair within the radius is rejected."""
    from collections import Counter

    from mm_assets.core.mine.select import ClusterTally, _greedy

    base = 0x1234_5678_9ABC_DEF0
    rows = pl.DataFrame({
        "key": ["a", "b", "c"], "bytes_hash": ["h1", "h2", "h3"], "pixel_hash": ["p1", "p2", "p3"],
        "phash": [base, base ^ 0b111, base ^ (0xFFFF << 20)], "phash_flip": [-0x5A5A_1234_0F0F_7777, 0x0F0F_3C3C_55AA_1357, -0x3210_FEDC_0123_4567],
        "cluster": [0, 0, 0], "cluster2": [-1, -1, -1]},
        schema_overrides={"cluster": pl.Int32, "cluster2": pl.Int32})
    for order in ([0, 1, 2], [1, 0, 2]):
        kept = rows[order]
        r = parse_mining_recipe("name: g\npools: [p]\ncounts: {0: 3}\n"
                                "dedup: {phash_radius: 6, cosine: null}\n")
        tallies, need = {0: ClusterTally(3)}, {0: 3}
        flags = {w: np.zeros(3, bool) for w in ("dup_corpus_exact", "dup_corpus_phash",
                                                "dup_corpus_cosine")}
        took, _ = _greedy(r, kept, np.zeros((3, 4), np.float32), flags, pl.DataFrame(),
                          np.zeros((0, 0), np.float32), tallies, need, None)
        assert took["key"].to_list() == [kept["key"][0], "c"]
        assert tallies[0].rejected == Counter({"dup_mined_phash": 1})


def test_an_unregistered_pool_is_named_with_the_known_ones(world):
    from mm_assets.core.mine.select import MiningError

    r = parse_mining_recipe("name: nopool\npools: [nope]\ncounts: {0: 1}\n")
    with pytest.raises(MiningError, match=r"pool 'nope' is not registered \(known: \['testpool'\]"):
        select(world.store, r)


def test_a_corpus_duplicate_across_a_cluster_border_needs_more_clusters(tmp_path):
    """The semantic test compares a candidate with the corpus images of its
    ``dedup.cosine_clusters`` nearest clusters: a corpus image assigned to the candidate's
    third-nearest cluster is found with 3 (and the default 4), not with 2 — the 20k
    EfficientNet run let 1-2 % semantic duplicates through with 2."""
    from mm_assets.core.mine import select_dups as dups
    from mm_assets.core.storage import Store

    store = Store(str(tmp_path))
    cents = np.eye(4, 8, dtype=np.float32)  # 4 clusters in 8-d
    store.write_npy(layout.centroids("image"), cents)
    cand = np.array([[0.50, 0.47, 0.45, 0, 0.3, 0, 0, 0]], np.float32)  # nearest 0, 1, 2
    twin = np.array([[0.45, 0.44, 0.52, 0, 0.3, 0, 0, 0]], np.float32)  # nearest 2: cluster 2
    other = np.array([[0, 0, 0, 1, 0, 0, 0, 0]], np.float32)
    corpus = np.concatenate([other, twin])
    corpus /= np.linalg.norm(corpus, axis=1, keepdims=True)
    cand /= np.linalg.norm(cand)
    store.write_npy(layout.embedding_vectors("000000", "image"), corpus.astype(np.float16))
    store.write_table(layout.embedding_keys("000000", "image"),
                      pl.DataFrame({"key": ["o", "t"]}), schemas.EMBEDDING_KEYS)
    clusters = pl.DataFrame({"key": ["o", "t"], "cluster": [3, 2]},
                            schema={"key": pl.Utf8, "cluster": pl.Int32})
    assert float(cand[0] @ corpus[1]) > 0.99 and int(np.argmax(cents @ corpus[1])) == 2
    assert sorted(dups.nearest_clusters(cand, dups.image_centroids(store), 3)[0]) == [0, 1, 2]
    found = {m: bool(dups.corpus_cosine(store, ["000000"], clusters, cand, dups.nearest_clusters(
        cand, dups.image_centroids(store), m), 0.95)[0]) for m in (1, 2, 3, 4, 9)}
    assert found == {1: False, 2: False, 3: True, 4: True, 9: True}
    assert parse_mining_recipe("name: d\npools: [p]\ncounts: {0: 1}\n").dedup.cosine_clusters == 4
