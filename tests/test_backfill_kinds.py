"""``mm-assets backfill`` for pool shards (pool_assign) and mining recipes (mined), the pool
shard spec, and ``run --recipes`` for mined. Backfill selection runs against a stand-in
webserver (the GraphQL answers the real one gives for these assets; tests/test_backfill.py
runs the real stack for corpus shards)."""

from __future__ import annotations

import re

import pytest

from mm_assets import backfill
from mm_assets.core.mine.pool import PoolError, parse_pool_spec

POOL_KEYS = ["dc__00000000", "dc__00000001", "dc__00000002", "laion__a", "laion__b"]
PARTS = {"pool_assign": ("pool_shards", POOL_KEYS), "mined": ("mining", ["div_v1", "div_v2"]),
         "image_hashes": ("shards", ["000000", "000001"]), "clusters": (None, [])}


class FakeGraphQL:
    """Answers the two queries describe_assets sends, records launches."""

    def __init__(self, url: str = ""):
        self.launched: list[dict] = []

    def __call__(self, query: str, variables: dict | None = None) -> dict:
        if "query Assets" in query:
            return {"assetNodes": [{"assetKey": {"path": [n]}, "isPartitioned": bool(kind),
                                    "partitionDefinition": {"dimensionTypes": [
                                        {"dynamicPartitionsDefinitionName": kind}]}
                                    if kind else None} for n, (kind, _) in PARTS.items()]}
        if "query Detail" in query:
            return {"assetNodes": [{"assetKey": k, "partitionKeys": PARTS[k["path"][0]][1],
                                    "assetPartitionStatuses": {
                                        "__typename": "DefaultPartitionStatuses",
                                        "materializedPartitions": ["dc__00000000"],
                                        "failedPartitions": []}}
                                   for k in variables["keys"]]}
        raise AssertionError(query)


def test_pool_spec_keys_globs_names_all_and_unknown():
    assert parse_pool_spec("dc__00000001", POOL_KEYS) == ["dc__00000001"]
    assert parse_pool_spec("dc__*,laion__b", POOL_KEYS) == POOL_KEYS[:3] + ["laion__b"]
    assert parse_pool_spec("laion", POOL_KEYS) == ["laion__a", "laion__b"]  # a pool's shards
    assert parse_pool_spec("all", POOL_KEYS) == POOL_KEYS
    for bad in ("dc__00000009", "nope", "nope__*"):
        with pytest.raises(PoolError, match=rf"unknown pool shard '{re.escape(bad)}'.*pools: dc, laion"):
            parse_pool_spec(bad, POOL_KEYS)


@pytest.mark.parametrize("select, spec, missing, want", [
    ("pool_assign", "dc__*", False, POOL_KEYS[:3]),
    ("pool_assign", "dc", True, ["dc__00000001", "dc__00000002"]),  # 00000000 materialized
    ("pool_assign", "all", False, POOL_KEYS),
    ("mined", "div_*", False, ["div_v1", "div_v2"]),
])
def test_backfill_selects_pool_shards_and_mining_recipes(select, spec, missing, want):
    states = backfill.describe_assets(FakeGraphQL(), [select])
    assert backfill.select_keys(states, spec, missing) == want


@pytest.mark.parametrize("select, spec, message", [
    ("pool_assign", "dc__0009", "unknown pool shard 'dc__0009'"),
    ("mined", "nope", "unknown recipe 'nope'"),
    ("pool_assign,image_hashes", "all",
     "pool_assign: pool_shards, image_hashes: shards) need separate backfills"),
    ("clusters", "all", "not partitioned per shard or recipe: clusters"),
])
def test_backfill_unknown_pool_shards_exit_2(monkeypatch, capsys, select, spec, message):
    monkeypatch.setattr(backfill, "GraphQL", FakeGraphQL)
    assert backfill.run_backfill(select, spec, dry_run=True) == 2
    assert message in capsys.readouterr().err


def test_backfill_dry_run_lists_pool_shards(monkeypatch, capsys):
    monkeypatch.setattr(backfill, "GraphQL", FakeGraphQL)
    assert backfill.run_backfill("pool_assign", "laion", dry_run=True) == 0
    out = capsys.readouterr().out
    assert "pool_assign over 2 pool shard(s)" in out and out.split("\n")[1:3] == POOL_KEYS[3:]


@pytest.mark.parametrize("spec, select, want", [
    ("", ["mined"], ("", None)),
    ("diversity_v1", ["mined"], ("", ["diversity_v1"])),
    ("div*", ["mined"], ("", ["diversity_v1"])),
    ("curated_all", ["mixtures"], ("curated_all", None)),  # mined not selected: untouched
    ("curated_all,diversity_v1", ["mixtures", "mined"], ("curated_all", ["diversity_v1"])),
    ("all", None, ("all", None)),  # every asset: `all` stays the mixtures' meaning
    ("ppl_*,diversity_v1", None, ("ppl_*", ["diversity_v1"])),
])
def test_run_recipes_apply_to_mining_recipes(tmp_path, spec, select, want):
    from mm_assets.core.storage import Store
    from mm_assets.mine_cli import split_recipe_spec

    assert split_recipe_spec(spec, select, Store(str(tmp_path))) == want


@pytest.mark.parametrize("spec, select, message", [
    ("nope", ["mined"], "unknown mining recipe 'nope'"),
    ("curated_all", ["mined"], "unknown mining recipe 'curated_all'"),
    ("nope", ["mixtures", "mined"], "no mixture recipe"),
])
def test_run_recipes_unknown_for_mined_is_an_error(tmp_path, spec, select, message):
    from mm_assets.core.storage import Store
    from mm_assets.mine_cli import split_recipe_spec

    with pytest.raises(ValueError, match=message):
        split_recipe_spec(spec, select, Store(str(tmp_path)))
