"""Mined samples labelled with superseded clusters (fresh-user tryout S5): a ``mined`` commit
records the centroids it selected against; after a re-cluster it is stale: ``run --missing``
re-mines it (decided when the mining layer starts) and a mixture with {mined: R} refuses it."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from dagster import instance_for_test, materialize

from mm_assets.assets.mining import mined, register_mining
from mm_assets.core import layout
from mm_assets.core.commits import read_commit
from mm_assets.core.mine.pool_shard import centroids_digest, stale_mined
from mm_assets.core.mix.build import iter_source
from mm_assets.core.mix.recipe import parse_recipe
from mm_assets.runner_plan import _plan

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_mining import MINING, MIX, _root  # the mining world of test_mining


def test_a_recluster_makes_mined_stale_and_the_mixture_refuses_it(tmp_path):
    storage = _root(tmp_path)
    store = storage.store()
    mined_source = parse_recipe(store.read_bytes(layout.recipe(f"{MIX}.yaml")).decode()
                                ).sources[1]
    with instance_for_test() as instance:
        register_mining(instance, storage)
        assert materialize([mined], partition_key=MINING, instance=instance,
                           resources={"storage": storage}).success
    rec = read_commit(store, "mined", MINING)
    assert rec["inputs"] == {"centroids": centroids_digest(store)} and len(
        rec["inputs"]["centroids"]) == 32
    assert not stale_mined(store, MINING)
    [(chosen, keys)] = _plan(["mined"], [], [], store, True, minings=[MINING])
    assert chosen == ["mined"] and keys() == []  # current: nothing to re-mine
    assert next(iter_source(store, mined_source, [], Counter())) is not None

    saved = store.read_bytes(layout.centroids("image"))  # what a re-cluster does
    store.write_npy(layout.centroids("image"),
                    np.asarray(store.read_npy(layout.centroids("image")))[::-1].copy())
    try:
        assert stale_mined(store, MINING)
        assert keys() == [MINING]  # the same plan, resolved when the layer starts
        with pytest.raises(FileNotFoundError, match=rf"mined\[{MINING}\] was mined against other"
                                                    r" cluster centroids.*--select "
                                                    r"pool_assign,mined --missing"):
            next(iter_source(store, mined_source, [], Counter()))
    finally:
        store.write_bytes(layout.centroids("image"), saved)
    assert not stale_mined(store, MINING) and keys() == []


def test_a_mined_record_without_centroids_is_stale(tmp_path):
    from mm_assets.core.commits import write_commit
    from mm_assets.core.records import StageCounts

    storage = _root(tmp_path)
    store = storage.store()
    assert not stale_mined(store, MINING)  # no committed partition: nothing stale
    write_commit(store, "mined", MINING, StageCounts(1, 1))  # written before this fix
    assert stale_mined(store, MINING)
