"""Fixtures of each published interleaved format ingest with counts reconciled (issue 16)."""

import io
import json

import numpy as np
import pytest
from PIL import Image

from mm_assets.core import layout, schemas
from mm_assets.core.interleaved import fixtures as fx
from mm_assets.core.interleaved.doc import ImageSeg, TextSeg
from mm_assets.core.interleaved.ingest import (
    DocIngestConfig,
    build_doc_shard,
    images_reconcile,
    plan_doc_ingest,
)
from mm_assets.core.interleaved.readers import iter_records
from mm_assets.core.interleaved.shards import read_docs
from mm_assets.core.storage import Store


def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _shape(doc):
    return [("t", s.text) if isinstance(s, TextSeg) else ("i", s.url) for s in doc.segments]


def _ingest(tmp_path, fmt, path, images=None, shard_size=1000):
    store = Store(str(tmp_path / "root"))
    [summary] = plan_doc_ingest(store, fmt, [str(path)], images,
                                DocIngestConfig(shard_size=shard_size))
    docs, quarantined, image_counts = [], [], {}
    totals = {"n_in": 0, "n_out": 0}
    for shard in summary.shards:
        counts, q, ic = build_doc_shard(store, shard)
        assert counts.reconciles() and images_reconcile(ic), (counts, ic)
        totals["n_in"] += counts.n_in
        totals["n_out"] += counts.n_out
        quarantined += q
        for k, v in ic.items():
            image_counts[k] = image_counts.get(k, 0) + v
        with store.open_read(layout.doc_shard(shard)) as f:
            docs += list(read_docs(f))
    return store, summary, docs, quarantined, image_counts, totals


@pytest.mark.parametrize("tiff", [True, False])
def test_mint1t_wds_with_tiff_or_members(tmp_path, tiff):
    want = fx.make_docs(9, seed=1, logo_in=2, url_only_every=0)
    path = fx.write_mint1t_wds(tmp_path / "mint.tar", want, tiff=tiff, extra=[
        ("broken", {"json": b"{not json"}),
        ("both", {"json": json.dumps({"texts": ["a"], "images": ["x"]}).encode()}),
        ("noimg", {"json": json.dumps({"texts": [None], "images": ["page_0_image_0"],
                                       "image_metadata": [{}]}).encode()})])
    _, summary, docs, q, ic, totals = _ingest(tmp_path, "mint1t-wds", path, shard_size=4)
    assert summary.records == 12 and len(summary.shards) == 3
    assert totals == {"n_in": 12, "n_out": 9}
    assert sorted(r.reason for r in q) == ["bad_json", "empty_document", "misaligned"]
    n_images = sum(d.n_images for d in want)
    assert ic["images_in"] == n_images + 1 and ic["images_with_bytes"] == n_images
    assert ic["dropped_missing_image"] == 1  # the image with neither bytes nor URL
    for got, exp in zip(docs, want, strict=True):
        assert [type(s) for s in got.segments] == [type(s) for s in exp.segments]
        assert got.texts == exp.texts
        for a, b in zip(got.images, exp.images, strict=True):
            if tiff:  # TIFF frames come back as PNG: same pixels
                assert np.array_equal(_pixels(a.data), _pixels(b.data))
            else:
                assert a.data == b.data
            assert (a.width, a.height) == (b.width, b.height) and a.ext == "png"
        assert got.meta["pdf_name"] == f"{exp.key}.pdf"
    assert all(d.key.startswith("mint-") for d in docs)


def test_mint1t_wds_image_names_with_their_extension_are_read(tmp_path):
    """``images`` may name the member with its extension (``000.jpg`` -> ``{key}.000.jpg``):
    the bytes are read, not dropped as ``missing_image``."""
    import io as _io
    import tarfile

    from PIL import Image

    buf = _io.BytesIO()
    Image.new("RGB", (20, 10), (200, 30, 30)).save(buf, format="JPEG")
    jpg, png = buf.getvalue(), fx.noise_png(3)
    members = {"d1.json": json.dumps({"texts": ["a", None, "b", None],
                                      "images": [None, "000.jpg", None, "001.png"]}).encode(),
               "d1.000.jpg": jpg, "d1.001.png": png}
    with tarfile.open(tmp_path / "ext.tar", "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, _io.BytesIO(data))
    _, _, [doc], q, ic, _ = _ingest(tmp_path, "mint1t-wds", tmp_path / "ext.tar")
    assert q == [] and ic["images_with_bytes"] == 2 and ic.get("images_dropped", 0) == 0
    assert [im.data for im in doc.images] == [jpg, png]
    assert [(im.ext, im.width, im.height) for im in doc.images] == [("jpg", 20, 10),
                                                                    ("png", 32, 32)]


@pytest.mark.parametrize("flavour, fmt", [("obelics", "obelics"), ("mint1t", "mint1t-parquet")])
def test_parquet_formats_keep_url_only_images(tmp_path, flavour, fmt):
    want = fx.make_docs(11, seed=2, url_only_every=2)
    path = fx.write_parquet(tmp_path / "docs.parquet", want, flavour=flavour, row_group_size=4)
    _, summary, docs, q, ic, totals = _ingest(tmp_path, fmt, path, shard_size=5)
    assert (summary.records, len(summary.shards), q) == (11, 3, [])
    assert totals == {"n_in": 11, "n_out": 11}
    n_images = sum(d.n_images for d in want)
    # images are URLs in these formats: every one kept and counted as URL-only
    assert ic["images_in"] == ic["images_url_only"] == n_images > 0
    assert sum(d.n_url_only for d in docs) == n_images
    assert [_shape(d) for d in docs] == [_shape(d) for d in want]
    assert docs[0].images[1].width == want[0].images[1].width
    if flavour == "obelics":
        assert docs[0].meta["general_metadata"] == {"url": "https://doc.example/0"}
    else:  # MINT-1T HTML: per-image columns in image order, attached to their image
        assert docs[0].meta["cc_dump"] == "CC-MAIN-2023-23"
        assert docs[0].meta["metadata"] == {"language": "en"}
        assert len(docs[0].images[1].meta["image_hash"]) == 64
        assert docs[0].images[1].meta["width"] == want[0].images[1].width


def test_mint1t_html_unaligned_image_columns_stay_whole_in_the_document(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = fx.parquet_table(fx.make_docs(1, seed=3, url_only_every=1), flavour="mint1t")
    n = sum(im is not None for im in table["images"][0].as_py())
    assert n >= 2
    short = table.set_column(table.schema.get_field_index("image_hashes"), "image_hashes",
                             pa.array([["h0"]], pa.list_(pa.string())))
    pq.write_table(short, tmp_path / "h.parquet")
    _, _, docs, q, ic, _ = _ingest(tmp_path, "mint1t-parquet", tmp_path / "h.parquet")
    [doc] = docs
    assert q == [] and ic["images_url_only"] == n  # every image kept
    assert doc.meta["image_hashes"] == ["h0"] and doc.meta["unaligned_image_columns"] == [
        "image_hashes"]
    assert all("image_hash" not in im.meta for im in doc.images)  # never zipped by position
    assert all("width" in im.meta for im in doc.images)  # the aligned column still is


def test_parquet_misaligned_row_is_quarantined(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = fx.parquet_table(fx.make_docs(2, seed=4))
    bad = pa.table({"images": pa.array([[None, "https://x"]], pa.list_(pa.string())),
                    "metadata": ["[]"], "general_metadata": ["{}"],
                    "texts": pa.array([["a", "b"]], pa.list_(pa.string()))})
    pq.write_table(pa.concat_tables([table, bad]), tmp_path / "o.parquet")
    _, _, _, q, _, totals = _ingest(tmp_path, "obelics", tmp_path / "o.parquet")
    assert totals == {"n_in": 3, "n_out": 2}
    assert [(r.reason, r.location) for r in q] == [("misaligned", "o:2")]


def test_mmc4_places_images_before_their_sentence(tmp_path):
    want = fx.make_docs(6, seed=5, logo_in=1, url_only_every=3)
    images = tmp_path / "images"
    path = fx.write_mmc4(tmp_path / "mmc4.jsonl", want, images, extra_lines=[
        "{broken", json.dumps({"text_list": ["a"], "image_info": [{"matched_text_index": 3}]}),
        json.dumps({"url": "x"})])
    corrupt = json.loads(path.read_text().splitlines()[1])["image_info"][0]["image_name"]
    (images / corrupt).write_bytes(b"\x89PNG\r\n\x1a\n not really")
    _, _, docs, q, ic, totals = _ingest(tmp_path, "mmc4", path, str(images))
    assert totals == {"n_in": 9, "n_out": 6}
    assert sorted(r.reason for r in q) == ["bad_json", "bad_matched_text_index", "bad_record"]
    n_images = sum(d.n_images for d in want)
    n_url_only = sum(d.n_url_only for d in want)
    assert ic["images_in"] == n_images
    assert ic["images_url_only"] == n_url_only > 0
    assert ic["images_with_bytes"] == n_images - n_url_only - 1
    assert ic["dropped_corrupt_image"] == 1
    dropped = docs[1].meta["dropped_images"]
    assert [d["reason"] for d in dropped] == ["corrupt_image"]
    kept = [s for s in want[1].segments if not (isinstance(s, ImageSeg)
                                                 and s.url == dropped[0]["url"])]
    assert [(type(s), getattr(s, "text", None)) for s in docs[1].segments] == \
        [(type(s), getattr(s, "text", None)) for s in kept]  # order kept, image removed
    for d, exp in zip(docs[2:], want[2:], strict=True):
        assert _shape(d) == _shape(exp)
        assert [s.data for s in d.images] == [s.data for s in exp.images]


def test_mmc4_without_image_folder_is_url_only(tmp_path):
    want = fx.make_docs(3, seed=6, url_only_every=0)
    path = fx.write_mmc4(tmp_path / "m.jsonl", want, None)
    ic = _ingest(tmp_path, "mmc4", path)[4]
    assert ic["images_url_only"] == ic["images_in"] == sum(d.n_images for d in want)


def test_reingest_is_idempotent_and_ranges_read_only_their_records(tmp_path):
    want = fx.make_docs(7, seed=7)
    path = fx.write_parquet(tmp_path / "o.parquet", want, row_group_size=2)
    store = Store(str(tmp_path / "root"))
    first = plan_doc_ingest(store, "obelics", [str(path)], None, DocIngestConfig(shard_size=3))
    again = plan_doc_ingest(store, "obelics", [str(path)], None, DocIngestConfig(shard_size=3))
    assert first[0].shards == ["000000", "000001", "000002"] and again[0].already
    with open(path, "rb") as f:
        assert [r.index for r in iter_records("obelics", f, "o", None, 3, 5)] == [3, 4]
    counts, _, _ = build_doc_shard(store, "000001")
    before = store.read_bytes(layout.doc_shard("000001"))
    build_doc_shard(store, "000001")
    assert store.read_bytes(layout.doc_shard("000001")) == before and counts.n_in == 3


def test_bad_format_and_options_fail_fast(tmp_path):
    store = Store(str(tmp_path / "root"))
    with pytest.raises(ValueError, match="unknown interleaved format"):
        plan_doc_ingest(store, "pdf", [str(tmp_path)], None, DocIngestConfig())
    with pytest.raises(ValueError, match="mmc4"):
        plan_doc_ingest(store, "obelics", [str(tmp_path)], str(tmp_path), DocIngestConfig())
    with pytest.raises(ValueError, match="shard_size"):
        DocIngestConfig(shard_size=0)
    assert schemas.DOC_IMAGES["pos"] is not None
