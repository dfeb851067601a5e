"""k adapts to small corpora (found by a fresh-user tryout: k = 16 on a few dozen samples made
clusters of 1-2 members, and SemDeDup, which compares only within a cluster, missed copies).

Corpora: 30 samples around 4 topics (cos ≈ 0.9 within a topic, as embeddings of one kind of
image or text) plus 10 known copies (cos ≈ 0.985 to their original); SemDeDup at its defaults.
"""

import numpy as np
import pytest

from mm_assets.core.semantic.cluster import ClusterConfig, spherical_kmeans
from mm_assets.core.semantic.semdedup import SemDedupConfig, semdedup_space


def _corpus(seed: int, n_orig: int = 30, n_pairs: int = 10, d: int = 32):
    rng = np.random.default_rng(seed)
    topics = rng.standard_normal((4, d))
    topics /= np.linalg.norm(topics, axis=1, keepdims=True)
    x = topics[rng.integers(0, 4, n_orig)] + 0.12 * rng.standard_normal((n_orig, d))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    copies = x[:n_pairs] + 0.03 * rng.standard_normal((n_pairs, d)).astype(np.float32)
    copies /= np.linalg.norm(copies, axis=1, keepdims=True)
    return np.concatenate([x, copies]), [(i, n_orig + i) for i in range(n_pairs)]


def _missed(x, pairs, cfg: ClusterConfig):
    """Known copy pairs SemDeDup leaves both kept, and its removals that are no copy."""
    res = spherical_kmeans(x, cfg)
    sd = semdedup_space(x, res.assign, res.distance, np.ones(len(x), bool), SemDedupConfig())
    missed = [p for p in pairs if not (sd.duplicate[p[0]] or sd.duplicate[p[1]])]
    copies = {i for p in pairs for i in p}
    wrong = [i for i in np.flatnonzero(sd.duplicate) if i not in copies]
    return res, missed, wrong


def test_a_known_copy_pair_split_at_k16_is_found_with_adaptive_k():
    x, pairs = _corpus(0)
    old, missed, _ = _missed(x, pairs, ClusterConfig(k=16, min_cluster_size=1))
    assert old.k_effective == 16 and (6, 36) in missed  # split over two clusters
    assert old.assign[6] != old.assign[36]
    new, missed, wrong = _missed(x, pairs, ClusterConfig(k=16))
    assert new.k_effective == 40 // 8 == 5
    assert new.k_rule == "k_eff = min(k=16, max(1, N=40 // min_cluster_size=8)) = 5"
    assert missed == [] and wrong == []
    assert new.assign[6] == new.assign[36]


def test_adaptive_k_finds_every_copy_over_30_small_corpora():
    old = new = 0
    for seed in range(30):
        x, pairs = _corpus(seed)
        old += len(_missed(x, pairs, ClusterConfig(min_cluster_size=1))[1])
        new += len(_missed(x, pairs, ClusterConfig())[1])
    print(f"copies missed of 300: k=16 {old}, adaptive k {new}")
    assert old >= 20 and new == 0, (old, new)


@pytest.mark.parametrize("n, k, m, want", [(0, 16, 8, 0), (1, 16, 8, 1), (7, 16, 8, 1),
                                           (70, 16, 8, 8), (128, 16, 8, 16), (10**6, 16, 8, 16),
                                           (175, 500, 1, 175)])
def test_effective_k_rule(n, k, m, want):
    assert ClusterConfig(k=k, min_cluster_size=m).effective_k(n) == want


def test_large_corpora_keep_the_requested_k_and_bad_size_is_refused():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((400, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert spherical_kmeans(x, ClusterConfig(k=16, niter=5)).k_effective == 16
    with pytest.raises(ValueError, match="min_cluster_size"):
        ClusterConfig(min_cluster_size=0)
