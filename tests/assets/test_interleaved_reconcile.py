"""Per-image accounting of interleaved documents is a blocking check (issue 16): a stage that
loses an image without counting it fails ``images_reconcile``, is not committed, and nothing
downstream of it runs; the counts live in the commit records.

The stages are the real code on a small mmc4 fixture (12 documents, 2 doc shards), with one
function patched per test to make the miscount.
"""

import polars as pl
import pytest
from dagster import AssetKey, instance_for_test, materialize

import mm_assets.assets.interleaved as ia
from mm_assets.core import layout, schemas
from mm_assets.core.commits import extra_counts_of, read_commit
from mm_assets.core.interleaved import fixtures as fx
from mm_assets.core.interleaved import ingest as ing
from mm_assets.core.interleaved import repeated as rep
from mm_assets.core.interleaved.doc import Document, ImageSeg
from mm_assets.core.interleaved.ingest import DocIngestConfig, plan_doc_ingest
from resources.storage import StorageResource

PER_SHARD = ["interleaved_docs", "doc_hashes"]


@pytest.fixture
def root(tmp_path):
    docs = fx.make_docs(12, seed=5, logo_in=12, url_only_every=3)
    path = fx.write_mmc4(tmp_path / "docs.jsonl", docs, tmp_path / "images")
    storage = StorageResource(root=str(tmp_path / "root"))
    [summary] = plan_doc_ingest(storage.store(), "mmc4", [str(path)], str(tmp_path / "images"),
                                DocIngestConfig(shard_size=6))
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("doc_shards", summary.shards)
        yield {"storage": storage, "store": storage.store(), "instance": instance,
               "shards": summary.shards, "docs": docs}


def _run(root, select, shard=None):
    assets = [ia.interleaved_docs, ia.doc_hashes, ia.doc_repeats, ia.docs_curated]
    return materialize(assets, selection=select, instance=root["instance"],
                       partition_key=shard, resources={"storage": root["storage"]},
                       raise_on_error=False)


def _check(result, asset):
    [ev] = [e for e in result.get_asset_check_evaluations()
            if e.asset_key == AssetKey(asset) and e.check_name == "images_reconcile"]
    return ev


def test_ingest_miscount_fails_the_blocking_check_and_downstream_does_not_run(root, monkeypatch):
    orig = ing.image_counts

    def one_lost(counts):  # the counter forgets one URL-only image
        c = orig(counts)
        c.n_out -= 1
        return c

    monkeypatch.setattr(ia, "image_counts", one_lost)
    shard = root["shards"][0]
    res = _run(root, PER_SHARD, shard)  # one run: doc_hashes is downstream in the same run
    assert not res.success
    ev = _check(res, "interleaved_docs")
    assert not ev.passed and ev.blocking and "images" in ev.description
    assert [e.asset_key for e in res.get_asset_materialization_events()] == \
        [AssetKey("interleaved_docs")]  # doc_hashes did not run
    assert read_commit(root["store"], "interleaved_docs", shard) is None
    assert read_commit(root["store"], "doc_hashes", shard) is None


def test_image_lost_between_stages_fails_the_next_stage(root, monkeypatch):
    """interleaved_docs counts right but writes one image less (a silent drop after the
    decision): doc_hashes reads one image fewer than interleaved_docs committed and fails."""
    orig = ing.validate_images

    def silent_drop(doc: Document, max_pixels, counts):
        doc = orig(doc, max_pixels, counts)
        imgs = [i for i, s in enumerate(doc.segments) if isinstance(s, ImageSeg)]
        if doc.key.endswith("-0000002") and imgs:
            del doc.segments[imgs[-1]]
        return doc

    monkeypatch.setattr(ing, "validate_images", silent_drop)
    shard = root["shards"][0]
    assert _run(root, ["interleaved_docs"], shard).success  # its own counter reconciles
    res = _run(root, ["doc_hashes"], shard)
    ev = _check(res, "doc_hashes")
    assert not res.success and not ev.passed and "read" in ev.description
    assert read_commit(root["store"], "doc_hashes", shard) is None


def test_image_counts_are_committed_and_a_curation_miscount_is_not(root, monkeypatch):
    """Images reconcile and are committed at every stage; then re-curating shard 0 with a
    policy that loses one image without a decision fails the check and withdraws the shard's
    commit (a consumer of committed shards no longer sees it)."""
    store, shards, docs = root["store"], root["shards"], root["docs"]
    for s in shards:
        assert _run(root, PER_SHARD, s).success
    assert _run(root, ["doc_repeats"]).success
    for s in shards:
        res = _run(root, ["docs_curated"], s)
        assert res.success and _check(res, "docs_curated").passed
    n_images = sum(d.n_images for d in docs)  # 12 logos + the noise / URL-only images
    n_url = sum(d.n_url_only for d in docs)
    ingest = [extra_counts_of(read_commit(store, "interleaved_docs", s), "images")
              for s in shards]
    assert sum(c.n_in for c in ingest) == sum(c.n_out for c in ingest) == n_images
    assert 0 < n_url < n_images
    hashed = [extra_counts_of(read_commit(store, "doc_hashes", s), "images") for s in shards]
    assert [c.n_in for c in hashed] == [c.n_out for c in ingest]
    cur = [extra_counts_of(read_commit(store, "docs_curated", s), "images") for s in shards]
    assert sum(c.n_in for c in cur) == n_images
    assert sum(c.removed["repeated_image"] for c in cur) == 12  # the logo, in 12 > 10 docs
    assert sum(c.n_out for c in cur) == n_images - 12

    orig = rep.apply_policies

    def lossy(doc, drop_pos, reason):
        out, rows = orig(doc, drop_pos, reason)
        if out is not None and out.key.endswith("-0000001"):  # one more image goes, no row
            last = max(i for i, s in enumerate(out.segments) if isinstance(s, ImageSeg))
            out.segments = [s for i, s in enumerate(out.segments) if i != last]
        return out, rows

    monkeypatch.setattr(rep, "apply_policies", lossy)
    res = _run(root, ["docs_curated"], shards[0])
    ev = _check(res, "docs_curated")
    assert not res.success and not ev.passed and "out +" in ev.description
    assert read_commit(store, "docs_curated", shards[0]) is None
    dec = store.read_table(layout.docs_curated_decisions(shards[0]), schemas.DOC_DECISIONS)
    key1 = pl.col("key").str.ends_with("-0000001")
    assert dec.filter(key1 & (pl.col("pos") >= 0)).height == 1  # the logo only
