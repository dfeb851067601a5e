"""A ``{wds: PREFIX}`` mixture source reads DataComp / img2dataset shards whose caption is only
in the metadata ``json`` (``caption``, else ``text``), as pool_assign reads pools; ``txt`` wins
when both exist, LLaVA ``conversations`` json is unchanged, no text at all is quarantined."""

from __future__ import annotations

import contextlib
import io
import json
from collections import Counter

import webdataset as wds
from PIL import Image

from mm_assets.core.mix.build import iter_source
from mm_assets.core.mix.recipe import parse_recipe
from mm_assets.core.storage import Store


def _jpg(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buf, "JPEG")
    return buf.getvalue()


def test_wds_source_reads_datacomp_json_captions(tmp_path):
    samples = [
        {"__key__": "000", "jpg": _jpg((200, 0, 0)),
         "json": json.dumps({"key": "000", "caption": "a red rectangle", "width": 40}).encode()},
        {"__key__": "001", "jpg": _jpg((0, 200, 0)),
         "json": json.dumps({"key": "001", "text": "a green rectangle"}).encode()},
        {"__key__": "002", "jpg": _jpg((0, 0, 200)), "txt": b"from txt",
         "json": json.dumps({"caption": "from json"}).encode()},
        {"__key__": "003", "jpg": _jpg((9, 9, 9)),
         "json": json.dumps({"key": "003", "width": 40}).encode()},  # no caption anywhere
        {"__key__": "004", "jpg": _jpg((1, 2, 3)), "json": json.dumps({"conversations": [
            {"from": "human", "value": "<image>\nWhat colour?"},
            {"from": "gpt", "value": "Dark."}]}).encode()},
    ]
    (tmp_path / "dc").mkdir()
    with open(tmp_path / "dc" / "00000.tar", "wb") as f, \
            contextlib.closing(wds.TarWriter(f, encoder=False)) as w:
        for s in samples:
            w.write(s)
    spec = parse_recipe(f"name: x\nsources: [{{name: dc, wds: {tmp_path / 'dc'}}}]\n").sources[0]
    quarantine, removed = [], Counter()
    got = {s.key.rsplit("-", 1)[-1]: s for s in iter_source(Store(str(tmp_path / "root")), spec,
                                                             quarantine, removed)}
    assert sorted(got) == ["000", "001", "002", "004"]
    answers = {k: s.conversations[-1]["value"] for k, s in got.items()}
    assert answers == {"000": "a red rectangle", "001": "a green rectangle",
                       "002": "from txt", "004": "Dark."}
    assert all(len(s.images) == 1 for s in got.values())
    assert [(q.reason, q.key.rsplit("-", 1)[-1]) for q in quarantine] == [("no_text", "003")]
