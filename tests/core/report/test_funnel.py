"""The funnel on a hand-made root: figures, flow arithmetic, and checks that fail when two
stages disagree."""

import json

import polars as pl
import pytest

from mm_assets.core.report.funnel import build_funnel
from mm_assets.core.report.render import render_html, render_text
from mm_assets.core.storage import Store

KEYS = list("abcdefghi")


def _commit(store, asset, part, n_in, n_out, removed=None, quarantined=None):
    store.write_bytes(f"_commits/{asset}/{part}.json", json.dumps({
        "asset": asset, "partition": part, "outputs": [], "counts": {
            "n_in": n_in, "n_out": n_out, "removed": removed or {},
            "quarantined": quarantined or {}}}).encode())


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path))
    _commit(s, "raw_shards", "000000", 10, 9, quarantined={"bad_json": 1})
    _commit(s, "exact_duplicates", "all", 9, 8, removed={"exact_duplicate": 1})
    s.write_parquet("exact_duplicates/groups.parquet", pl.DataFrame({
        "key": ["a", "b", "c", "d"], "kind": ["image", "image", "text", "text"],
        "group_id": ["g", "g", "t", "t"], "is_representative": [True, False, True, False],
        "action": ["merge", "merge", "keep", "remove"]}))
    s.write_parquet("exact_duplicates/near_groups.parquet", pl.DataFrame({
        "key": ["a", "b", "e", "f", "h", "i"], "near_group": ["a", "a", "e", "e", "h", "h"]}))
    s.write_parquet("semdedup/scores.parquet", pl.DataFrame({
        "key": KEYS, "unique": [k not in "bd" for k in KEYS], "duplicate": [k == "f" for k in KEYS],
        "unconfirmed": [k == "g" for k in KEYS]}))
    reason = {"d": "exact_duplicate", "f": "semdedup", "h": "ppl_out_of_range"}
    s.write_parquet("curated/000000.decisions.parquet", pl.DataFrame({
        "key": KEYS, "status": ["removed" if k in reason else "kept" for k in KEYS],
        "reason": [reason.get(k) for k in KEYS]}))
    _commit(s, "curated", "000000", 9, 6, removed={"exact_duplicate": 1, "semdedup": 1,
                                                  "ppl_out_of_range": 1})
    return s


def test_figures_and_checks(store):
    f = build_funnel(store)
    assert f.ok, [c for c in f.checks if not c.ok]
    totals = [(r.stage, r.n) for r in f.rows if r.kind == "total"]
    assert totals == [("ingest", 10), ("ingest", 9), ("exact dedup", 8), ("SemDeDup", 7),
                      ("quality filters", 6)]
    by = {(r.stage, r.figure): r.n for r in f.rows}
    assert by[("ingest", "quarantined: bad_json")] == 1
    assert by[("exact dedup", "image copies kept for merging")] == 1
    assert by[("near duplicates", "... also exact duplicates")] == 2
    assert by[("near duplicates", "... removed by SemDeDup")] == 1
    assert by[("near duplicates", "... removed by a quality filter")] == 1
    assert by[("near duplicates", "... kept in curated")] == 2
    assert by[("SemDeDup", "unique samples scored")] == 7
    assert by[("SemDeDup", "above the threshold, kept: unconfirmed")] == 1
    assert by[("quality filters", "removed: ppl_out_of_range")] == 1
    assert f.sources["raw_shards"] == "commit records"
    text, page = render_text(f), render_html(f)
    assert "= curated samples" in text and "ok   curated read every raw sample" in text
    assert page.count("<tr class=") == len(f.rows) + len(f.checks)


def test_disagreeing_stages_fail_a_check(store):
    _commit(store, "curated", "000000", 9, 5, removed={"exact_duplicate": 2, "semdedup": 1,
                                                      "ppl_out_of_range": 1})
    f = build_funnel(store)
    failed = {c.name for c in f.checks if not c.ok}
    assert failed == {"curated removed the exact copies exact_duplicates marked",
                      "curated samples = raw - exact - SemDeDup - quality"}
    assert "FAIL curated removed the exact copies" in render_text(f)


def test_an_empty_root_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="no raw_shards partition"):
        build_funnel(Store(str(tmp_path)))


def test_corpus_totals_for_per_shard_pages(store):
    from mm_assets.core.report.counts import corpus_metadata

    _commit(store, "raw_shards", "000001", 5, 3, quarantined={"bad_json": 1, "missing_image": 1})
    meta = corpus_metadata(store, "raw_shards")
    assert {k: v for k, v in meta.items() if k != "corpus_note"} == {
        "corpus_shards": 2, "corpus_n_in": 15, "corpus_n_out": 12,
        "corpus_quarantined_bad_json": 2, "corpus_quarantined_missing_image": 1}
    assert corpus_metadata(store, "image_hashes") == {}


def test_text_quality_flags_per_flag_and_per_source(store):
    store.write_parquet("text_quality/000000.parquet", pl.DataFrame({
        "key": ["a", "a", "c", "e"], "source": ["s1", "s1", "s1", "s2"],
        "flag": ["truncated", "truncated", "mojibake", "truncated"], "turn": [1, 3, 1, 1]}))
    f = build_funnel(store)
    assert f.ok
    by = {(r.stage, r.figure): r.n for r in f.rows}
    assert by[("quality filters", "samples with a text-quality flag")] == 3
    assert by[("quality filters", "flagged: truncated")] == 2  # a counts once for two turns
    assert by[("quality filters", "flagged: mojibake")] == 1
    assert by[("quality filters", "flagged in source s1")] == 2
    assert by[("quality filters", "flagged in source s2")] == 1
