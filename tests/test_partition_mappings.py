"""Every partitioned asset's upstream partitions resolve, the way the webserver checks a backfill
before launching it (``dagster_graphql ... assert_valid_asset_partition_backfill``) and the
backfill daemon checks each step: for every partitioned parent of a partitioned asset, the
parent partitions of a targeted subset must all exist (tryout S3: ``semdedup_range``,
``mined`` and ``mixtures`` backfills failed with HTTP 500 because their deps on per-shard
assets had no partition mapping, so a range key was looked up as an ``embeddings`` shard).

No webserver or daemon: Dagster's asset graph view over an ephemeral instance holding a few
dynamic partitions per partitions definition."""

from __future__ import annotations

import pytest
from dagster import AllPartitionMapping, AssetKey, DagsterInstance
from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView

from mm_assets.definitions import defs

GRAPH = defs.resolve_asset_graph()


def _keys(name: str) -> list[str]:
    """Three partition keys per dynamic partitions definition, unique across definitions (as
    real ones are: shard ids, recipe names, ``{space}__r{i}__p{plan}`` ranges)."""
    return [f"{name}__k{i}" for i in range(3)]


def _pairs() -> list[tuple[AssetKey, AssetKey]]:
    """(child, parent) for every partitioned asset and each of its partitioned parents."""
    pairs = []
    for key in sorted(GRAPH.get_all_asset_keys()):
        node = GRAPH.get(key)
        if node.partitions_def is None:
            continue
        pairs += [(key, p) for p in sorted(node.parent_keys)
                  if GRAPH.get(p).partitions_def is not None]
    return pairs


PAIRS = _pairs()
CROSS = [(c, p) for c, p in PAIRS if GRAPH.get(c).partitions_def != GRAPH.get(p).partitions_def]


@pytest.fixture(scope="module")
def view():
    with DagsterInstance.ephemeral() as instance:
        names = {GRAPH.get(k).partitions_def.name for pair in PAIRS for k in pair}
        for name in names:
            instance.add_dynamic_partitions(name, _keys(name))
        yield AssetGraphView.for_test(defs, instance)


def test_the_cross_definition_deps_are_the_known_ones():
    """Guards the loop below against finding nothing (e.g. a renamed partitions def)."""
    found = {(c.to_user_string(), p.to_user_string()) for c, p in CROSS}
    assert {("semdedup_range", "embeddings"), ("mined", "embeddings"), ("mined", "image_hashes"),
            ("mined", "pool_assign"), ("mixtures", "curated"), ("mixtures", "mined"),
            ("mixtures", "raw_shards"), ("mixtures", "interleaved_docs"),
            ("mixtures", "docs_curated"), ("mixtures", "synthetic_checked")} <= found


@pytest.mark.parametrize(("child", "parent"), PAIRS,
                         ids=[f"{c.to_user_string()}<-{p.to_user_string()}" for c, p in PAIRS])
def test_upstream_partitions_of_a_backfill_target_exist(view, child, parent):
    child_def, parent_def = GRAPH.get(child).partitions_def, GRAPH.get(parent).partitions_def
    target = view.get_subset_from_partition_keys(child, child_def, set(_keys(child_def.name)[:2]))
    parents, missing = view.compute_parent_subset_and_required_but_nonexistent_subset(
        parent, target)
    assert missing.is_empty, f"{child.to_user_string()} needs non-existent {parent}: {missing}"
    got = parents.expensively_compute_partition_keys()
    if child_def == parent_def:  # same keys: the same shard's upstream
        assert got == set(_keys(child_def.name)[:2])
    else:  # a range / recipe reads every shard (pool shard, spec, document shard) upstream
        assert isinstance(GRAPH.get_partition_mapping(child, parent), AllPartitionMapping)
        assert got == set(_keys(parent_def.name))
