"""SemDeDup ranges as stored units (plan -> per-range score tables -> finish): the same scores,
partners, ε and decisions as the in-memory reference, with each range scored from nothing but
the store and its key; stale or missing ranges refused; pHashes read only for the candidates."""

import numpy as np
import pytest

from mm_assets.core import layout
from mm_assets.core.commits import GLOBAL, read_commits, write_commit
from mm_assets.core.records import StageCounts
from mm_assets.core.semantic.semdedup import SemDedupConfig, finish_space, semdedup_space
from mm_assets.core.semantic.semdedup_plan import (
    RangePlanError,
    SpaceInput,
    check_current,
    make_plan,
    read_plan,
    upstream_digests,
    withdraw,
    write_plan,
)
from mm_assets.core.semantic.semdedup_scoring import gather_scores, range_counts
from mm_assets.core.storage import Store

SIZES = [700, 0, 900, 1, 1399]  # an empty shard and a 1-row one
SHARDS = tuple(f"{i:06d}" for i in range(len(SIZES)))


def _space(n=3000, d=32, k=23, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d))
    assign = rng.integers(0, k, n)
    assign[assign == 7] = 3  # a cluster id without points
    x = centers[assign] + 0.4 * rng.standard_normal((n, d))
    x[rng.integers(0, n, n // 10)] = x[rng.integers(0, n, n // 10)]  # near/exact copies
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)
    distance = rng.random(n).astype(np.float32)
    unique = rng.random(n) > 0.3
    return x, assign.astype(np.int32), distance, unique


def _root(tmp_path, x, space="image") -> Store:
    store = Store(str(tmp_path / "root"))
    at = 0
    for shard, m in zip(SHARDS, SIZES, strict=True):
        store.write_npy(layout.embedding_vectors(shard, space), x[at:at + m])
        at += m
    for asset in ("clusters", "exact_duplicates"):  # what the plan is made from
        store.write_bytes(f"{asset}.bin", b"v1")
        write_commit(store, asset, GLOBAL, StageCounts(1, 1), [f"{asset}.bin"], digests=True)
    return store


def _plan(store, x, assign, distance, unique, space="image", range_mib=1, min_ranges=5):
    inp = SpaceInput(SHARDS, tuple(SIZES), x.shape[1], assign, distance, unique)
    plan, jobs = make_plan({space: inp}, upstream_digests(store), range_mib * 2**20, min_ranges)
    write_plan(store, plan, jobs)
    return plan


@pytest.mark.parametrize("ranking,target,image", [("hard", None, True), ("random", 0.2, False)])
def test_planned_ranges_give_the_in_memory_decisions(tmp_path, ranking, target, image):
    x, assign, distance, unique = _space()
    cfg = SemDedupConfig(epsilon=0.1, target_fraction=target, ranking=ranking, seed=5, block=64,
                         image_epsilon=0.3, dense_median=0.5)
    rng = np.random.default_rng(9)
    ph = [[int(h)] for h in rng.integers(0, 2**62, len(x))] if image else None
    want = semdedup_space(x, assign, distance, unique, cfg, phashes=ph)
    store = _root(tmp_path, x)
    plan = _plan(store, x, assign, distance, unique)
    keys = plan.keys()
    assert len(keys) >= 5 and all(k.startswith("image__r") for k in keys)
    # each range from the store and its key alone, with the other ranges' files untouched
    for key in keys:
        counts, _ = range_counts(key, store, cfg)
        assert counts.reconciles() and counts.n_in > 0
    assert sum(r[3] for r in plan.spaces["image"].ranges) == int(unique.sum())
    scores, partner, used = gather_scores(store, read_plan(store), "image")
    assert used == {"ranking": ranking, "seed": 5, "block": 64}
    asked = []

    def lookup(pos):
        asked.append(len(pos))
        return {int(p): ph[p] for p in pos}

    got = finish_space(scores, partner, assign, unique, cfg, lookup if image else None)
    np.testing.assert_array_equal(got.scores, want.scores)
    np.testing.assert_array_equal(got.partner, want.partner)
    np.testing.assert_array_equal(got.duplicate, want.duplicate)
    np.testing.assert_array_equal(got.unconfirmed, want.unconfirmed)
    assert got.epsilon == want.epsilon and got.dense == want.dense
    if image:  # pHashes asked once, for the candidates and partners only
        cand = np.flatnonzero((want.duplicate | want.unconfirmed) & np.isin(assign, want.dense))
        assert asked == [len(set(cand.tolist()) | set(want.partner[cand].tolist()))]
        assert 0 < asked[0] < len(x)
        assert want.unconfirmed.any()


def test_missing_stale_and_mixed_ranges_are_refused(tmp_path):
    x, a, d, u = _space()
    store = _root(tmp_path, x)
    plan = _plan(store, x, a, d, u, min_ranges=3)
    first, *rest = plan.keys()
    range_counts(first, store, SemDedupConfig())
    with pytest.raises(RangePlanError, match=rf"{len(rest)} range\(s\) not scored"):
        gather_scores(store, plan, "image")
    for key in rest:
        range_counts(key, store, SemDedupConfig(ranking="easy"))
    with pytest.raises(RangePlanError, match="different settings"):
        gather_scores(store, plan, "image")
    # another exact_duplicates table: the plan is stale
    store.write_bytes("exact_duplicates.bin", b"v2")
    write_commit(store, "exact_duplicates", GLOBAL, StageCounts(1, 1),
                 ["exact_duplicates.bin"], digests=True)
    with pytest.raises(RangePlanError, match="stale: exact_duplicates changed"):
        check_current(store, read_plan(store))
    # the new plan has other keys; the old ranges' files and commit records are withdrawn
    write_commit(store, "semdedup_range", first, StageCounts(1, 1))
    new = _plan(store, x, a, d, u, min_ranges=3)
    assert not set(new.keys()) & set(plan.keys())
    assert read_commits(store, "semdedup_range") == {}
    assert layout.shard_ids(store, layout.SEMDEDUP_RANGE_SCORES, ".json") == []
    assert len(layout.shard_ids(store, layout.SEMDEDUP_RANGE_JOBS, ".parquet")) == len(new.keys())
    with pytest.raises(RangePlanError, match="older plan"):
        range_counts(first, store, SemDedupConfig())
    # a re-clustering withdraws everything
    withdraw(store)
    with pytest.raises(RangePlanError, match="no SemDeDup range plan"):
        read_plan(store)


def test_the_same_inputs_give_the_same_plan(tmp_path):
    x, assign, distance, unique = _space(n=sum(SIZES))
    store = _root(tmp_path, x)
    one = _plan(store, x, assign, distance, unique)
    before = store.read_bytes(layout.SEMDEDUP_PLAN)
    two = _plan(store, x, assign, distance, unique)
    assert one == two and store.read_bytes(layout.SEMDEDUP_PLAN) == before
