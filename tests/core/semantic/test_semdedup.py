import itertools

import numpy as np
import pytest

from mm_assets.core.semantic.cluster import ClusterConfig, spherical_kmeans
from mm_assets.core.semantic.semdedup import (
    SemDedupConfig,
    cluster_scores,
    is_duplicate,
    rank_members,
    resolve_epsilon,
    semdedup_scores,
    semdedup_space,
)


def _unit(rng, n, d):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _brute(x, assign, distance, ranking, seed):
    out = np.full(len(x), -1.0)
    for c in np.unique(assign):
        idx = np.flatnonzero(assign == c)
        order = idx[rank_members(distance[idx], ranking, seed + int(c))]
        for pos, i in enumerate(order):
            for j in order[:pos]:
                out[i] = max(out[i], float(x[i] @ x[j]))
    return out


@pytest.mark.parametrize("n,k,block", [(1, 1, 4), (17, 3, 4), (64, 5, 7), (150, 1, 4096)])
@pytest.mark.parametrize("ranking", ["hard", "easy", "random"])
def test_scores_match_brute_force(n, k, block, ranking):
    rng = np.random.default_rng(n * 31 + k)
    x = _unit(rng, n, 12)
    assign = rng.integers(0, k, n)
    distance = rng.random(n).astype(np.float32)
    cfg = SemDedupConfig(ranking=ranking, seed=3, block=block)
    got = semdedup_scores(x, assign, distance, cfg)
    np.testing.assert_allclose(got, _brute(x, assign, distance, ranking, 3), atol=1e-5)


def test_epsilon_boundary_is_inclusive_and_exact_copies_score_one():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    s = cluster_scores(x)
    assert s[0] == -1.0 and s[1] == pytest.approx(1.0) and s[2] == pytest.approx(0.6)
    assert is_duplicate(np.array([0.6], np.float32), 0.4).tolist() == [True]
    assert is_duplicate(np.array([0.5999], np.float32), 0.4).tolist() == [False]


@pytest.mark.parametrize("f", [0.05, 0.1, 0.3])
def test_target_fraction_removes_that_fraction(f):
    rng = np.random.default_rng(1)
    scores = rng.random(2000).astype(np.float32)
    eps = resolve_epsilon(scores, SemDedupConfig(epsilon=None, target_fraction=f))
    assert abs(is_duplicate(scores, eps).mean() - f) <= 1 / 2000


def test_ties_at_the_threshold_remove_all_tied_members():
    scores = np.array([0.1, 0.5, 0.5, 0.5, 0.9], np.float32)
    eps = resolve_epsilon(scores, SemDedupConfig(epsilon=None, target_fraction=0.4))
    assert is_duplicate(scores, eps).sum() == 4  # 0.5 is the 60% quantile; ties go too


def test_config_validation_names_the_value():
    with pytest.raises(ValueError, match="target_fraction"):
        SemDedupConfig(target_fraction=1.5)
    with pytest.raises(ValueError, match="ranking"):
        SemDedupConfig(ranking="middle")


def test_kmeans_clamps_k_and_handles_one_point_and_one_cluster():
    rng = np.random.default_rng(0)
    x = _unit(rng, 175, 16)
    res = spherical_kmeans(x, ClusterConfig(k=500, niter=5, min_cluster_size=1))
    assert res.k_effective == 175 and res.assign.shape == (175,)
    one = spherical_kmeans(x[:1], ClusterConfig(k=8))
    assert one.k_effective == 1 and one.assign.tolist() == [0]
    assert one.distance[0] == pytest.approx(0.0, abs=1e-5)
    single = spherical_kmeans(x, ClusterConfig(k=1, niter=5))
    assert set(single.assign.tolist()) == {0}
    empty = spherical_kmeans(np.zeros((0, 16), np.float32), ClusterConfig(k=4))
    assert empty.k_effective == 0


def test_kmeans_separates_well_separated_groups():
    rng = np.random.default_rng(2)
    centers = _unit(rng, 3, 32)
    x = np.repeat(centers, 40, axis=0) + 0.01 * rng.standard_normal((120, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    res = spherical_kmeans(x, ClusterConfig(k=3, niter=20, seed=0))
    for g in range(3):
        assert len(set(res.assign[g * 40:(g + 1) * 40].tolist())) == 1
    assert len(set(res.assign.tolist())) == 3
    assert res.distance.max() < 0.01


def test_dense_cluster_duplicates_need_phash_confirmation_sparse_ones_do_not():
    rng = np.random.default_rng(5)
    dense = rng.standard_normal(32) + 0.05 * rng.standard_normal((6, 32))  # all look alike
    dense[3] = dense[1] + 1e-3  # point 3 is a copy of point 1
    sparse = rng.standard_normal((6, 32)) * 3
    sparse[5] = sparse[4] + 0.01  # one copy among distinct photos
    x = np.concatenate([dense, sparse]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assign = np.repeat([0, 1], 6)
    distance = 1 - (x * x[assign * 6]).sum(1)
    ph = [[int(h)] for h in rng.integers(0, 2**62, 12)]  # distinct pHashes (~31 bits apart)
    ph[3] = [ph[1][0] ^ 0b101]  # the copy's pHash: 2 bits from its original's
    cfg = SemDedupConfig(image_epsilon=0.2, dense_median=0.8, phash_bits=8, ranking="easy")
    res = semdedup_space(x, assign, distance, np.ones(12, bool), cfg, phashes=ph)
    assert res.dense == [0] and res.epsilon == 0.2
    high = [i for i in range(6) if res.scores[i] >= 0.8]
    assert len(high) == 5  # cosine alone would remove all but the first-ranked page
    later = max((1, 3), key=lambda i: distance[i])
    assert np.flatnonzero(res.duplicate[:6]).tolist() == [later]
    assert res.partner[later] == 4 - later
    assert np.flatnonzero(res.unconfirmed).tolist() == sorted(set(high) - {later})
    assert res.duplicate[6:].tolist() == [False] * 5 + [True]  # sparse: plain SemDeDup
    plain = semdedup_space(x, assign, distance, np.ones(12, bool), cfg)  # text space: no pHash
    assert plain.dense == [] and plain.epsilon == cfg.epsilon and plain.duplicate[:6].sum() == 5


@pytest.mark.parametrize("fit_sample", [700, 10_000])
def test_kmeans_over_shard_blocks_equals_kmeans_over_all_rows(fit_sample):
    from mm_assets.core.semantic.cluster import spherical_kmeans_blocks

    rng = np.random.default_rng(4)
    x = _unit(rng, 3000, 24).astype(np.float16)
    cfg = ClusterConfig(k=12, niter=8, fit_sample=fit_sample, seed=1)
    want = spherical_kmeans(x, cfg)
    cuts = [0, 7, 1000, 1013, 2500, 3000]  # blocks of 7 and 13 rows too
    got = spherical_kmeans_blocks(lambda: (x[a:b] for a, b in itertools.pairwise(cuts)), 3000,
                                  24, cfg)
    np.testing.assert_array_equal(got.centroids, want.centroids)
    np.testing.assert_array_equal(got.assign, want.assign)
    np.testing.assert_allclose(got.distance, want.distance, atol=1e-6)
    with pytest.raises(ValueError, match="blocks hold 2500 rows"):
        spherical_kmeans_blocks(lambda: iter([x[:2500]]), 3000, 24, cfg)


@pytest.mark.parametrize("eps", [1.0, 1.5, 2.0])
def test_the_first_of_each_cluster_is_never_a_duplicate_whatever_epsilon(eps):
    # a tryout's image_epsilon 2.0 marked the first-ranked point (score -1, partner -1) a
    # duplicate and then looked up pHash[-1]
    rng = np.random.default_rng(3)
    x = _unit(rng, 12, 16)
    assign = np.repeat([0, 1, 2], 4)
    distance = rng.random(12)
    ph = [[int(h)] for h in rng.integers(0, 2**62, 12)]
    cfg = SemDedupConfig(image_epsilon=eps, dense_median=-1.0, phash_bits=64)
    res = semdedup_space(x, assign, distance, np.ones(12, bool), cfg, phashes=ph)
    first = {int(c): int(np.flatnonzero(assign == c)[np.argmin(
        res.scores[assign == c])]) for c in range(3)}
    assert all(res.partner[i] == -1 and not res.duplicate[i] for i in first.values())
    if eps == 2.0:  # every other point (pHash bits 64: all confirm)
        assert res.duplicate.sum() == 12 - 3
