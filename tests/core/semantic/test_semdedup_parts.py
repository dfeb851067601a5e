"""SemDeDup from the cluster-ordered file, in worker processes: the same decisions as in memory."""

import numpy as np
import pytest

from mm_assets.core.semantic.semdedup import SemDedupConfig, semdedup_space
from mm_assets.core.semantic.semdedup_parts import (
    cluster_layout,
    semdedup_by_cluster,
    split_clusters,
    write_by_cluster,
)


def _space(n=3000, d=32, k=23, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d))
    assign = rng.integers(0, k, n)
    x = centers[assign] + 0.4 * rng.standard_normal((n, d))
    x[rng.integers(0, n, n // 10)] = x[rng.integers(0, n, n // 10)]  # near/exact copies
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)
    distance = rng.random(n).astype(np.float32)
    distance[:50] = 0.5  # ties: broken by corpus order
    unique = rng.random(n) > 0.3
    return x, assign.astype(np.int32), distance, unique


@pytest.mark.parametrize("ranking,workers,target,image", [
    ("hard", 1, None, False), ("easy", 2, 0.1, False), ("random", 1, 0.2, False),
    ("hard", 2, None, True)])
def test_per_cluster_file_gives_identical_scores_partners_and_decisions(
        tmp_path, ranking, workers, target, image):
    x, assign, distance, unique = _space()
    cfg = SemDedupConfig(epsilon=0.1, target_fraction=target, ranking=ranking, seed=5, block=64,
                         image_epsilon=0.3, dense_median=0.5)
    rng = np.random.default_rng(9)
    ph = [[int(h)] for h in rng.integers(0, 2**62, len(x))] if image else None
    want = semdedup_space(x, assign, distance, unique, cfg, phashes=ph)
    layout = cluster_layout(assign, 25)  # two empty clusters at the end
    path = str(tmp_path / "by_cluster.npy")
    blocks = [x[i:i + 700] for i in range(0, len(x), 700)]
    write_by_cluster(path, blocks[:1] + [x[:0]] + blocks[1:], layout, x.shape[1])  # + empty
    on_disk = np.load(path)
    np.testing.assert_array_equal(on_disk, x[layout.order])
    got = semdedup_by_cluster(path, layout, assign, distance, unique, cfg, workers=workers,
                              phashes=ph)
    np.testing.assert_array_equal(got.scores, want.scores)
    np.testing.assert_array_equal(got.partner, want.partner)
    np.testing.assert_array_equal(got.duplicate, want.duplicate)
    assert got.epsilon == want.epsilon and got.n_unique == want.n_unique
    assert got.dense == want.dense and (not image or len(want.dense) > 0)
    np.testing.assert_array_equal(got.unconfirmed, want.unconfirmed)
    assert want.unconfirmed.any() if image else 0.05 < want.duplicate.mean() < 0.6


def test_cluster_ranges_cover_every_cluster_once_and_balance_pairwise_work():
    offsets = np.concatenate([[0], np.cumsum([1000, 10, 10, 10, 500, 500, 0, 3])])
    ranges = split_clusters(offsets, 3)
    assert [c for lo, hi in ranges for c in range(lo, hi)] == list(range(8))
    assert ranges[0][1] <= 4 and len(ranges) >= 2  # the big cluster with little else


def test_an_empty_space_gives_an_empty_result(tmp_path):
    from mm_assets.core.semantic.semdedup_parts import semdedup_blocks

    res = semdedup_blocks([], 0, np.zeros(0, np.int32), np.zeros(0, np.float32),
                          np.zeros(0, bool), SemDedupConfig(), tmp_dir=str(tmp_path))
    assert res.n_unique == 0 and res.scores.shape == (0,) and res.epsilon == 0.05


def test_blocks_that_do_not_add_up_are_refused(tmp_path):
    layout = cluster_layout(np.array([0, 1, 0], np.int32))
    with pytest.raises(ValueError, match="blocks hold 2 rows"):
        write_by_cluster(str(tmp_path / "x.npy"), [np.zeros((2, 4), np.float16)], layout, 4)
