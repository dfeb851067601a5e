"""The per-shard decision index gives the same decisions as the corpus-wide tables."""

import time

import numpy as np
import polars as pl
import pytest

from mm_assets.core.curate.decide import CurateConfig, decide
from mm_assets.core.curate.index import build_index, decision_inputs, tables_fingerprint
from mm_assets.core.storage import Store


def _tables(n=2000, n_shards=7, seed=0):
    rng = np.random.default_rng(seed)
    keys = [f"k{i:05d}" for i in rng.permutation(n)]
    key_shard = pl.DataFrame({"key": keys, "shard": [f"{i % n_shards:05d}" for i in range(n)]})
    members = rng.choice(n, n // 2, replace=False)
    gid = rng.integers(0, n // 8, len(members))  # groups span shards
    g = pl.DataFrame({"key": [keys[i] for i in members], "group_id": gid})
    g = g.with_columns(pl.col("key").min().over("group_id").alias("representative"))
    g = g.with_columns(pl.when(pl.col("key") == pl.col("representative")).then(pl.lit("keep"))
                       .otherwise(pl.lit("remove")).alias("action"))
    dup = rng.random(n) < 0.2
    scores = pl.DataFrame({"key": keys, "duplicate": dup})
    scored = rng.random(n) < 0.9  # some samples have no decile
    dec = pl.DataFrame({"key": [k for k, s in zip(keys, scored, strict=True) if s],
                        "decile": rng.integers(0, 10, int(scored.sum()))})
    return key_shard, g, scores, dec


def _old_semdup(scores, groups):
    dup = set(scores.filter(pl.col("duplicate"))["key"].to_list())
    hit = groups.filter(pl.col("representative").is_in(list(dup)))
    return dup | set(hit["key"].to_list())


@pytest.mark.parametrize("cfg", [CurateConfig(), CurateConfig(2, 7)])
def test_per_shard_index_decides_exactly_as_the_corpus_wide_tables(cfg):
    key_shard, groups, scores, dec = _tables()
    semdup = _old_semdup(scores, groups)
    deciles = dict(zip(dec["key"].to_list(), dec["decile"].to_list(), strict=True))
    parts = build_index(key_shard, groups, scores, dec)
    assert sorted(parts) == sorted(set(key_shard["shard"]))
    reasons = set()
    for shard, part in parts.items():
        keys = key_shard.filter(pl.col("shard") == shard)["key"].to_list()
        assert part["key"].to_list() == keys
        want = decide(keys, groups.filter(pl.col("key").is_in(keys)), semdup, deciles, cfg)
        exact, sd, dl = decision_inputs(part)
        got = decide(keys, exact, sd, dl, cfg)
        assert got.equals(want)
        reasons |= set(got["reason"].drop_nulls())
    assert {"exact_duplicate", "semdedup"} <= reasons
    assert cfg == CurateConfig() or {"ppl_out_of_range", "no_ppl_score"} <= reasons


def test_the_fingerprint_changes_when_a_table_is_rewritten(tmp_path):
    store = Store(str(tmp_path))
    store.write_parquet("a.parquet", pl.DataFrame({"x": [1]}))
    fp = tables_fingerprint(store, ["a.parquet"])
    assert tables_fingerprint(store, ["a.parquet"]) == fp
    time.sleep(0.01)
    store.write_parquet("a.parquet", pl.DataFrame({"x": [1, 2]}))
    assert tables_fingerprint(store, ["a.parquet"]) != fp
