"""WebDataset keys: the webdataset convention (first dot), `split_key` when a dotted key
splits a sample, and the last-dot option (issue 19 item 4)."""

import gzip
import io
import json
import tarfile

import pytest
from PIL import Image

from mm_assets.core.ingest.plan import IngestConfig, plan_ingest, read_manifest
from mm_assets.core.ingest.rawshard import RawShardConfig, build_samples
from mm_assets.core.shards import split_member
from mm_assets.core.storage import Store


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 10, 10)).save(buf, "PNG")
    return buf.getvalue()


def _tar(path, members: dict[str, bytes]):
    with tarfile.open(path, "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _conv() -> bytes:
    return json.dumps({"conversations": [{"from": "human", "value": "<image>\nWhat?"},
                                         {"from": "gpt", "value": "A red square."}]}).encode()


def _build(tmp_path, tar, wds_key="first_dot"):
    store = Store(str(tmp_path / "root"))
    [shard] = plan_ingest(store, [str(tar)], None, IngestConfig(wds_key=wds_key))
    header, _ = read_manifest(store, shard)
    quarantine: list = []
    return list(build_samples(header, [], RawShardConfig(), quarantine)), quarantine


@pytest.mark.parametrize("base,rule,want", [
    ("img.v2.png", "first_dot", ("img", "v2.png")),
    ("img.v2.png", "last_dot", ("img.v2", "png")),
    ("a.txt.gz", "last_dot", ("a", "txt.gz")),
    ("a.b.txt.gz", "last_dot", ("a.b", "txt.gz")),
    ("a.txt.gz", "first_dot", ("a", "txt.gz")),
])
def test_member_names_split_per_rule(base, rule, want):
    assert split_member(base, rule) == want


def test_a_dotted_key_gets_split_key_naming_the_convention(tmp_path):
    tar = _tar(tmp_path / "dots.tar", {"img.v2.png": _png(), "img.v2.json": _conv(),
                                       "plain.png": _png(), "plain.json": _conv()})
    out, quarantine = _build(tmp_path, tar)
    assert [s.key for s in out] == ["dots-plain"]
    [q] = quarantine
    assert q.reason == "split_key"
    assert "first dot" in q.error and "--wds-key last-dot" in q.error and "v2.json" in q.error


def test_the_last_dot_option_keeps_dots_in_keys(tmp_path):
    caption = gzip.compress(b"A red square on white.")
    tar = _tar(tmp_path / "dots.tar", {"img.v2.png": _png(), "img.v2.json": _conv(),
                                       "cap.v1.png": _png(), "cap.v1.txt.gz": caption})
    out, quarantine = _build(tmp_path, tar, "last_dot")
    assert not quarantine
    assert [s.key for s in out] == ["dots-img_v2", "dots-cap_v1"]
    assert out[0].conversations[1]["value"] == "A red square."
    assert out[1].conversations[1]["value"] == "A red square on white."


def test_last_dot_on_numbered_members_reports_the_split(tmp_path):
    tar = _tar(tmp_path / "canon.tar", {"k.json": _conv(), "k.0.png": _png()})
    out, quarantine = _build(tmp_path, tar, "last_dot")
    assert not out  # k.json alone has a token but no image; k.0 is the split-off image
    assert [q.reason for q in quarantine] == ["image_token_mismatch", "split_key"]
    assert "'k.0'" in quarantine[1].error and "first-dot" in quarantine[1].error
    first, _ = _build(tmp_path / "b", tar)  # first dot: one sample with its image
    assert len(first) == 1 and len(first[0].images) == 1
