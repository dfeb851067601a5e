"""Shard and recipe specs: ranges, lists, globs, unknown names."""

import pytest

from mm_assets.partitions import parse_shard_spec

KNOWN = [f"{i:06d}" for i in range(12_000)]


def test_ranges_lists_and_globs_over_12000_shards():
    assert parse_shard_spec("0-11999", KNOWN) == KNOWN
    assert parse_shard_spec("all", KNOWN) == KNOWN
    assert parse_shard_spec("5,3,5,000007", KNOWN) == ["000005", "000003", "000007"]
    assert parse_shard_spec("0001*", KNOWN) == [f"{i:06d}" for i in range(100, 200)]
    assert parse_shard_spec("10-12,0000[0-1]?", KNOWN) == (
        ["000010", "000011", "000012"] + [f"{i:06d}" for i in range(20) if i not in (10, 11, 12)])


def test_unknown_and_malformed_specs_fail():
    with pytest.raises(ValueError, match="unknown shard"):
        parse_shard_spec("11990-12005", KNOWN)
    with pytest.raises(ValueError, match="bad shard range"):
        parse_shard_spec("9-3", KNOWN)
