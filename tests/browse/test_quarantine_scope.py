"""The sample browser reads quarantined samples of corpus stages only (a tryout's gallery
crashed on `raw_shards/badpool__00000.tar` once a pool shard had quarantined rows)."""

import polars as pl

from mm_assets.browse import _layout as browse_layout
from mm_assets.core import layout
from mm_assets.core.storage import Store


def test_pool_and_recipe_quarantine_are_not_corpus_shards(tmp_path):
    store = Store(str(tmp_path))
    row = pl.DataFrame({"key": ["k"], "stage": ["x"], "reason": ["r"]})
    for stage, part in (("raw_shards", "000000"), ("embeddings", "000001"),
                        ("pool_assign", "badpool__00000"), ("mixtures", "mix"),
                        ("interleaved_docs", "d000000")):
        store.write_parquet(layout.quarantine(stage, part), row)
    every = {p for p, _ in layout.quarantine_files(store)}
    assert every == {"000000", "000001", "badpool__00000", "mix", "d000000"}
    assert sorted(p for p, _ in browse_layout.quarantine_files(store)) == ["000000", "000001"]
