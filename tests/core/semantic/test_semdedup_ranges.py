"""SemDeDup per cluster range from the per-shard vector files: the same scores, partners and
decisions as the in-memory reference (semdedup_space) and the cluster-ordered-file version
(semdedup_parts, what the asset ran before), reading only the rows of each range."""

import numpy as np
import pytest

from mm_assets.core import layout
from mm_assets.core.semantic.semdedup import SemDedupConfig, semdedup_space
from mm_assets.core.semantic.semdedup_parts import semdedup_blocks
from mm_assets.core.semantic.semdedup_ranges import (
    ShardVectors,
    plan_ranges,
    score_range,
    semdedup_ranges,
)
from mm_assets.core.storage import Store


def _space(n=3000, d=32, k=23, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d))
    assign = rng.integers(0, k, n)
    assign[assign == 7] = 3  # a cluster id without points
    x = centers[assign] + 0.4 * rng.standard_normal((n, d))
    x[rng.integers(0, n, n // 10)] = x[rng.integers(0, n, n // 10)]  # near/exact copies
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)
    distance = rng.random(n).astype(np.float32)
    distance[:50] = 0.5  # ties: broken by corpus order
    unique = rng.random(n) > 0.3
    return x, assign.astype(np.int32), distance, unique


def _write_shards(store: Store, x: np.ndarray, sizes: list[int], space="image") -> ShardVectors:
    rels, at = [], 0
    for i, m in enumerate(sizes):
        rels.append(layout.embedding_vectors(f"{i:06d}", space))
        store.write_npy(rels[-1], x[at:at + m])
        at += m
    assert at == len(x)
    return ShardVectors(store, tuple(rels), np.array(sizes, np.int64), x.shape[1])


SIZES = [700, 0, 900, 1, 1399]  # an empty shard (no point in this space) and a 1-row one


@pytest.mark.parametrize("ranking,workers,target,image,range_rows", [
    ("hard", 1, None, False, 150), ("easy", 2, 0.1, False, 400), ("random", 1, 0.2, False, 10),
    ("hard", 2, None, True, 10_000)])
def test_ranges_give_identical_scores_partners_and_decisions(
        tmp_path, ranking, workers, target, image, range_rows):
    x, assign, distance, unique = _space()
    cfg = SemDedupConfig(epsilon=0.1, target_fraction=target, ranking=ranking, seed=5, block=64,
                         image_epsilon=0.3, dense_median=0.5)
    rng = np.random.default_rng(9)
    ph = [[int(h)] for h in rng.integers(0, 2**62, len(x))] if image else None
    want = semdedup_space(x, assign, distance, unique, cfg, phashes=ph)
    before = semdedup_blocks([x[:1500], x[1500:]], x.shape[1], assign, distance, unique, cfg,
                             workers=1, tmp_dir=str(tmp_path), phashes=ph)
    src = _write_shards(Store(str(tmp_path / "root")), x, SIZES)
    got = semdedup_ranges(src, assign, distance, unique, cfg, workers=workers,
                          range_bytes=range_rows * 2 * x.shape[1], phashes=ph)
    for ref in (want, before):
        np.testing.assert_array_equal(got.scores, ref.scores)
        np.testing.assert_array_equal(got.partner, ref.partner)
        np.testing.assert_array_equal(got.duplicate, ref.duplicate)
        np.testing.assert_array_equal(got.unconfirmed, ref.unconfirmed)
        assert got.epsilon == ref.epsilon and got.n_unique == ref.n_unique
        assert got.dense == ref.dense
    assert np.isnan(got.scores[~unique]).all() and np.isfinite(got.scores[unique]).all()
    if image:
        assert len(want.dense) > 0 and want.unconfirmed.any()
    else:
        assert 0.05 < want.duplicate.mean() < 0.6


def test_ranges_cover_each_unique_point_once_and_respect_the_byte_budget():
    _, assign, distance, unique = _space()
    jobs = plan_ranges(assign, distance, unique, row_bytes=64, range_bytes=64 * 200)
    pos = np.concatenate([j.positions for j in jobs])
    np.testing.assert_array_equal(np.sort(pos), np.flatnonzero(unique))
    sizes = np.bincount(assign[unique])
    for j in jobs:
        assert np.all(np.diff(j.positions) > 0)  # ascending: shard files read front to back
        assert set(np.unique(j.cluster)) <= set(range(j.c0, j.c1))
        np.testing.assert_array_equal(j.cluster, assign[j.positions])
        np.testing.assert_array_equal(j.distance, distance[j.positions])
        # at most the budget, unless one cluster alone exceeds it
        assert len(j.positions) <= 200 or (j.c1 - j.c0 == 1 and sizes[j.c0] > 200)
    assert [j.c1 for j in jobs[:-1]] == [j.c0 for j in jobs[1:]]  # contiguous, no overlap
    big = plan_ranges(assign, distance, unique, row_bytes=64, range_bytes=2**40, min_ranges=4)
    assert 4 <= len(big) <= 6  # no byte limit: split by pairwise work into about 4
    work = [float((np.bincount(j.cluster) ** 2).sum()) for j in big]
    assert max(work) <= sum(work) / 4 * 1.0 + max(sizes) ** 2


def test_a_range_reads_only_the_shards_holding_its_rows(tmp_path):
    x, assign, distance, unique = _space()
    o = np.argsort(assign, kind="stable")  # a corpus sorted by cluster: shard 0 = low clusters
    x, assign, distance, unique = x[o], assign[o], distance[o], unique[o]
    store = Store(str(tmp_path))
    src = _write_shards(store, x, SIZES)
    cfg = SemDedupConfig()
    job = next(j for j in plan_ranges(assign, distance, unique, 64, 64 * 300)
               if j.positions[-1] < 700)  # lies in the first shard only
    for rel in src.rels[1:]:
        store.rm(rel)  # the other shards are not needed
    pos, s, p = score_range(src, job, cfg)
    full = semdedup_space(x, assign, distance, unique, cfg)
    np.testing.assert_array_equal(s, full.scores[pos])
    np.testing.assert_array_equal(p, full.partner[pos])


def test_vectors_that_changed_after_clustering_are_refused(tmp_path):
    x, assign, distance, unique = _space(n=200)
    store = Store(str(tmp_path))
    src = _write_shards(store, x, [100, 100])
    store.write_npy(src.rels[1], x[:90])  # a shard re-embedded with fewer rows
    with pytest.raises(ValueError, match=r"shape \(90, 32\), expected \(100, 32\)"):
        semdedup_ranges(src, assign, distance, unique, SemDedupConfig())
    with pytest.raises(ValueError, match="assign must have shape"):
        semdedup_ranges(src, assign[:-1], distance, unique, SemDedupConfig())


def test_an_empty_space_gives_an_empty_result(tmp_path):
    src = ShardVectors(Store(str(tmp_path)), (), np.zeros(0, np.int64), 0)
    res = semdedup_ranges(src, np.zeros(0, np.int32), np.zeros(0, np.float32),
                          np.zeros(0, bool), SemDedupConfig(), workers=2)
    assert res.n_unique == 0 and res.scores.shape == (0,) and res.epsilon == 0.05


def test_scores_do_not_depend_on_the_process_thread_count():
    """MKL's float sums depend on its thread count (D=1280 differs between 1 and 2 threads on
    this box): the matmuls run with MATMUL_THREADS whatever the process is set to."""
    import torch

    from mm_assets.core.semantic.semdedup import cluster_scores

    rng = np.random.default_rng(3)
    x = rng.standard_normal((212, 1280)).astype(np.float32)
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)
    had = torch.get_num_threads()
    try:
        got = {}
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            got[n] = cluster_scores(x, with_partner=True)
            assert torch.get_num_threads() == n  # restored
    finally:
        torch.set_num_threads(had)
    for n in (2, 3):
        np.testing.assert_array_equal(got[n][0], got[1][0])
        np.testing.assert_array_equal(got[n][1], got[1][1])
