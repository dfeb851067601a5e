"""The interleaved document model and its stored WebDataset form read by a standard loader."""

import json

import pytest
import webdataset as wds

from mm_assets.core.interleaved.doc import (
    Document,
    DocumentError,
    ImageSeg,
    TextSeg,
    from_wds,
    to_wds,
)
from mm_assets.core.interleaved.fixtures import logo_png, make_docs
from mm_assets.core.interleaved.shards import read_docs, write_docs


def _doc():
    png = logo_png()
    return Document("src-0000001", "src", [
        TextSeg("Intro."), ImageSeg(data=png, url="https://a/1.png", width=40, height=40,
                                     meta={"alt": "ring"}, ext="png"),
        ImageSeg(url="https://a/2.jpg"), TextSeg("Outro.")], {"url": "https://doc/1"})


def test_properties_count_images_and_url_only():
    d = _doc()
    assert d.texts == ["Intro.", "Outro."]
    assert d.n_images == 2 and d.n_url_only == 1
    assert [s.url for s in d.images] == ["https://a/1.png", "https://a/2.jpg"]


def test_stored_form_is_mint1t_style_and_round_trips():
    d = _doc()
    members = to_wds(d)
    assert list(members) == ["src-0000001.json", "src-0000001.1.png"]
    body = json.loads(members["src-0000001.json"])
    # position-aligned lists, null where the other modality sits
    assert body["texts"] == ["Intro.", None, None, "Outro."]
    assert body["images"] == [None, "1.png", "https://a/2.jpg", None]
    assert body["urls"] == [None, "https://a/1.png", "https://a/2.jpg", None]
    assert body["sizes"] == [None, [40, 40], None, None]
    sample = {"__key__": "src-0000001", **{k.split(".", 1)[1]: v for k, v in members.items()}}
    assert from_wds(sample) == d
    assert to_wds(from_wds(sample)) == members  # same bytes again


def test_standard_webdataset_loader_reads_shards_back(tmp_path):
    docs = make_docs(6, seed=3, logo_in=2)
    path = tmp_path / "docs.tar"
    with open(path, "wb") as f:
        assert write_docs(f, docs) == 6
    loaded = list(wds.WebDataset(str(path), shardshuffle=False))
    assert [s["__key__"] for s in loaded] == [d.key for d in docs]
    assert [from_wds(s) for s in loaded] == docs
    with open(path, "rb") as f:
        assert list(read_docs(f)) == docs
    again = tmp_path / "again.tar"
    with open(again, "wb") as f:
        write_docs(f, docs)
    assert again.read_bytes() == path.read_bytes()  # deterministic bytes


@pytest.mark.parametrize("body, reason", [
    ({"texts": ["a", None], "images": [None]}, "misaligned"),
    ({"texts": ["a"], "images": ["x.png"]}, "misaligned"),
    ({"texts": [None], "images": [None]}, "misaligned"),
    ({"texts": [None], "images": ["0.png"]}, "missing_member"),
])
def test_bad_stored_documents_raise_with_reason(body, reason):
    with pytest.raises(DocumentError) as e:
        from_wds({"__key__": "k", "json": json.dumps({"key": "k", **body}).encode()})
    assert e.value.reason == reason


def test_keys_with_dots_are_refused():
    with pytest.raises(DocumentError) as e:
        to_wds(Document("a.b", "s", [TextSeg("x")]))
    assert e.value.reason == "bad_key"
