"""Text-quality flags through the whole demo graph (the real ``mm-assets demo``): the demo's six
defective text records carry their flag in ``text_quality``, curated removes those whose flag is
a default filter as ``text_<flag>`` and keeps the others, flags are counted per source, and the
counts of every committed partition reconcile."""

import polars as pl
import pytest

from mm_assets.core import layout
from mm_assets.core.commits import counts_of, read_commits
from mm_assets.core.curate.decide import CurateConfig
from mm_assets.core.report.funnel import build_funnel
from mm_assets.core.storage import Store
from mm_assets.demo.data import load_truth

pytestmark = pytest.mark.slow  # the demo loads the language models


def test_demo_flags_removals_per_reason_and_counts(demo_root):
    store = Store(str(demo_root))
    truth = load_truth(demo_root.parent / ".mm_assets" / "demo_input")
    defects = {r["id"]: r["defect"] for r in truth.iter_rows(named=True) if r["defect"]}
    assert len(defects) == 6
    flags = pl.concat([store.read_parquet(layout.text_quality(s))
                       for s in read_commits(store, "text_quality")])
    by_id = flags.with_columns(pl.col("key").str.extract(r"-(demo-\d+)$").alias("id"))
    got = {i: set(g["flag"]) for (i,), g in by_id.group_by("id") if i in defects}
    assert got == {i: {f} for i, f in defects.items()}

    decisions = pl.concat([store.read_parquet(rel)
                           for _, rel in layout.curated_decision_files(store)]).with_columns(
        pl.col("key").str.extract(r"-(demo-\d+)$").alias("id"))
    filters = set(CurateConfig().text_filters)
    for rid, flag in defects.items():
        [row] = decisions.filter(pl.col("id") == rid).iter_rows(named=True)
        if flag in filters:
            assert (row["status"], row["reason"]) == ("removed", f"text_{flag}"), row
        else:
            assert row["reason"] != f"text_{flag}", row
    removed = decisions.filter(pl.col("reason").str.starts_with("text_"))
    assert removed.height == sum(f in filters for f in defects.values()) >= 3

    for asset in ("raw_shards", "text_quality", "curated"):
        recs = read_commits(store, asset)
        assert recs and all(counts_of(r).reconciles() for r in recs.values()), asset
    curated_removed = sum(counts_of(r).removed.get(f"text_{f}", 0)
                          for r in read_commits(store, "curated").values() for f in filters)
    assert curated_removed == removed.height

    funnel = build_funnel(store)  # flags per source, as the report shows them
    rows = {r.figure: r.n for r in funnel.rows if r.stage == "quality filters"}
    sources = {k: n for k, n in rows.items() if k.startswith("flagged in source ")}
    assert sum(sources.values()) == rows["samples with a text-quality flag"] >= 6, rows
    assert all(rows[f"flagged: {f}"] >= 1 for f in set(defects.values()))
    assert all(c.ok for c in funnel.checks), [c for c in funnel.checks if not c.ok]
