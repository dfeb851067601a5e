"""Repeated images across documents and duplicate documents, against plain-Python references."""

import io
from collections import defaultdict

import polars as pl
import pytest
from PIL import Image

from mm_assets.core.interleaved import fixtures as fx
from mm_assets.core.interleaved.doc import Document, ImageSeg, TextSeg
from mm_assets.core.interleaved.hashes import doc_hash, hash_docs
from mm_assets.core.interleaved.repeated import (
    RepeatConfig,
    apply_policies,
    duplicate_documents,
    repeated_images,
)

LOGO = fx.logo_png()


def _resized_logo() -> bytes:  # same picture, other bytes (2x, another encoder setting)
    im = Image.open(io.BytesIO(LOGO)).resize((80, 80), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _corpus():
    docs = fx.make_docs(40, seed=21, logo_in=12, url_only_every=5)
    big = _resized_logo()
    for d in docs[30:33]:  # the logo resized in 3 more documents
        d.segments.insert(1, ImageSeg(data=big, ext="png"))
    return docs


def test_groups_match_a_plain_python_count():
    docs = _corpus()
    images, _ = hash_docs(docs, 10**8)
    rows, groups = repeated_images(images, RepeatConfig(max_docs_per_image=10))
    ref = defaultdict(set)  # bytes hash -> documents, by brute force
    for r in images.filter(pl.col("has_bytes")).iter_rows(named=True):
        ref[r["bytes_hash"]].add(r["key"])
    want = {f"bytes:{h}": len(k) for h, k in ref.items() if len(k) >= 2}
    got = dict(groups.filter(pl.col("kind") == "bytes").select("group_id", "n_docs").iter_rows())
    assert got == want and max(want.values()) == 12
    # the resized copies share the logo's pHash: 15 documents, more than bytes alone (12)
    phash = groups.filter(pl.col("kind") == "phash").row(0, named=True)
    assert (phash["n_docs"], phash["action"]) == (15, "drop")
    dropped = rows.filter(pl.col("action") == "drop")
    assert dropped.height == 15 and dropped["kind"].unique().to_list() == ["phash"]


@pytest.mark.parametrize("limit, drop, n_dropped", [(14, True, 15), (15, True, 0),
                                                    (1, False, 0)])
def test_threshold_is_more_than_max_docs_and_policy_can_only_report(limit, drop, n_dropped):
    images, _ = hash_docs(_corpus(), 10**8)
    rows, groups = repeated_images(images, RepeatConfig(max_docs_per_image=limit,
                                                        drop_repeated=drop))
    assert rows.filter(pl.col("action") == "drop").height == n_dropped
    assert groups.height > 0


def test_url_only_images_group_by_url():
    a = Document("a", "s", [TextSeg("x"), ImageSeg(url="https://cdn/icon.png")])
    b = Document("b", "s", [ImageSeg(url="https://cdn/icon.png"), TextSeg("y")])
    images, _ = hash_docs([a, b], 10**8)
    rows, groups = repeated_images(images, RepeatConfig(max_docs_per_image=1))
    assert groups.select("group_id", "n_docs", "action").rows() == [
        ("url:https://cdn/icon.png", 2, "drop")]
    assert rows.select("key", "pos").rows() == [("a", 1), ("b", 0)]


def test_apply_keeps_order_and_accounts_every_image():
    d = Document("k", "s", [ImageSeg(data=LOGO), TextSeg("one"), ImageSeg(url="u1"),
                            TextSeg("two"), ImageSeg(data=LOGO)])
    out, rows = apply_policies(d, {0, 4}, None)
    assert [getattr(s, "text", getattr(s, "url", None)) for s in out.segments] == \
        ["one", "u1", "two"]
    assert [(r["pos"], r["status"], r["reason"]) for r in rows] == [
        (-1, "kept", None), (0, "removed", "repeated_image"), (4, "removed", "repeated_image")]
    gone, rows = apply_policies(d, {0}, "duplicate_document")
    assert gone is None
    assert [(r["pos"], r["reason"]) for r in rows] == [
        (-1, "duplicate_document"), (0, "repeated_image"), (2, "removed_with_document"),
        (4, "removed_with_document")]
    only_logo = Document("z", "s", [ImageSeg(data=LOGO)])
    assert apply_policies(only_logo, {0}, None)[1][0]["reason"] == "no_segments_left"


def test_duplicate_documents_hash_ordered_segments():
    base = [TextSeg("Hello  World"), ImageSeg(data=LOGO), TextSeg("bye")]
    same = Document("b", "s", [TextSeg("hello world"), ImageSeg(data=LOGO), TextSeg("Bye")])
    swapped = Document("c", "s", [ImageSeg(data=LOGO), TextSeg("hello world"), TextSeg("bye")])
    docs = [Document("a", "s", base), same, swapped]
    assert doc_hash(docs[0]) == doc_hash(same) != doc_hash(swapped)
    _, table = hash_docs(docs, 10**8)
    dup = duplicate_documents(table, RepeatConfig())
    assert dup.select("key", "representative", "action").rows() == [
        ("a", "a", "keep"), ("b", "a", "remove")]
    off = duplicate_documents(table, RepeatConfig(drop_duplicate_documents=False))
    assert off["action"].to_list() == ["keep", "keep"]


def test_config_is_validated():
    with pytest.raises(ValueError, match="max_docs_per_image"):
        RepeatConfig(max_docs_per_image=0)


def test_phash_radius_groups_jpeg_copies_of_the_logo():
    def jpeg(q):
        buf = io.BytesIO()
        Image.open(io.BytesIO(LOGO)).convert("RGB").save(buf, "JPEG", quality=q)
        return buf.getvalue()

    docs = fx.make_docs(12, seed=22, logo_in=6, url_only_every=0)
    for d, q in zip(docs[6:9], (90, 60, 50), strict=True):  # 3 lossy copies, other pHashes
        d.segments.insert(0, ImageSeg(data=jpeg(q), ext="jpg"))
    images, _ = hash_docs(docs, 10**8)
    assert images.filter(pl.col("pos") == 0)["phash"].n_unique() > 1
    exact, _ = repeated_images(images, RepeatConfig(max_docs_per_image=6))
    near, groups = repeated_images(images, RepeatConfig(max_docs_per_image=6, phash_radius=8))
    assert exact.filter(pl.col("action") == "drop").height == 0  # 6 docs each: not > 6
    dropped = near.filter(pl.col("action") == "drop")
    assert sorted(dropped["key"].to_list()) == [d.key for d in docs[:9]]
    assert dropped["pos"].unique().to_list() == [0] and dropped["kind"].unique().to_list() == [
        "near"]
    assert groups.filter(pl.col("kind") == "near")["n_docs"].max() == 9
    with pytest.raises(ValueError, match="phash_radius"):
        RepeatConfig(phash_radius=64)


def test_removals_are_split_per_doc_shard():
    from mm_assets.core.interleaved.repeated import removals_by_shard

    rows = pl.DataFrame({"key": ["a", "a", "c", "d"], "pos": [0, 2, 1, 0],
                         "group_id": ["g"] * 4, "kind": ["bytes"] * 4, "n_docs": [12] * 4,
                         "action": ["drop", "drop", "keep", "drop"]})
    dups = pl.DataFrame({"key": ["b", "e"], "group_id": ["h", "h"], "group_size": [2, 2],
                         "representative": ["b", "b"], "action": ["keep", "remove"]})
    key_shard = pl.DataFrame({"key": ["a", "b", "c", "d", "e", "f"],
                              "shard": ["s0", "s0", "s1", "s1", "s1", "s2"]})
    per = removals_by_shard(rows, dups, key_shard)
    assert sorted(per) == ["s0", "s1", "s2"] and per["s2"].height == 0  # every shard has one
    assert per["s0"].rows() == [("a", 0, "removed", "repeated_image"),
                                ("a", 2, "removed", "repeated_image")]
    assert per["s1"].rows() == [("d", 0, "removed", "repeated_image"),
                                ("e", -1, "removed", "duplicate_document")]
    with pytest.raises(ValueError, match="keys of no doc shard"):
        removals_by_shard(rows, dups, key_shard.filter(pl.col("key") != "d"))
