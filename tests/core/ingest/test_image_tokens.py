"""Image tokens only in user turns; <video>/<audio> tokens without media refused (issue 19 item 2)."""

import io
import json
from collections import Counter

from PIL import Image

from mm_assets.core.ingest.plan import IngestConfig, plan_ingest, read_manifest
from mm_assets.core.ingest.rawshard import RawShardConfig, build_samples
from mm_assets.core.records import Sample
from mm_assets.core.storage import Store
from mm_assets.core.text.merge import MergeConfig, image_token_problem, merge_group


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 10)).save(buf, "PNG")
    return buf.getvalue()


def _build(tmp_path, recs):
    (tmp_path / "img").mkdir(exist_ok=True)
    (tmp_path / "img" / "a.png").write_bytes(_png())
    src = tmp_path / "in.json"
    src.write_text(json.dumps(recs))
    store = Store(str(tmp_path / "root"))
    [shard] = plan_ingest(store, [str(src)], str(tmp_path / "img"), IngestConfig())
    header, records = read_manifest(store, shard)
    quarantine: list = []
    out = list(build_samples(header, records, RawShardConfig(), quarantine))
    assert len(out) + len(quarantine) == len(records) == len(recs)
    return out, {q.key.split("-", 2)[-1]: q.reason for q in quarantine}


def _conv(q, a):
    return [{"from": "human", "value": q}, {"from": "gpt", "value": a}]


def test_image_token_in_an_assistant_turn_is_quarantined(tmp_path):
    out, reasons = _build(tmp_path, [
        {"id": "ok", "image": "a.png", "conversations": _conv("<image>\nWhat?", "Grass.")},
        {"id": "ans", "image": "a.png", "conversations": _conv("What?", "<image> Grass.")},
        {"id": "both", "image": "a.png", "conversations": _conv("<image>\nWhat?", "See <image>")},
    ])
    assert [s.metadata["id"] for s in out] == ["ok"]
    assert reasons == {"ans": "image_token_in_answer", "both": "image_token_in_answer"}


def test_video_and_audio_tokens_without_media_are_unsupported(tmp_path):
    out, reasons = _build(tmp_path, [
        {"id": "v", "conversations": _conv("<video>\nWhat happens?", "A dog runs.")},
        {"id": "au", "conversations": _conv("<audio>\nWho speaks?", "A man.")},
        {"id": "t", "conversations": _conv("Plain?", "Yes.")},
    ])
    assert [s.metadata["id"] for s in out] == ["t"]
    assert reasons == {"v": "unsupported_modality", "au": "unsupported_modality"}


def test_merged_rule_flags_a_sample_with_two_tokens_for_one_image():
    img = [b"png"]
    good = Sample("a", _conv("<image>\nWhat colour?", "Red."), img, ["png"])
    bad = Sample("b", _conv("<image>\nHow many?", "Two <image>"), img, ["png"])  # old raw shard
    [merged] = merge_group([good, bad], MergeConfig())
    assert image_token_problem(merge_group([good], MergeConfig())[0]) is None
    assert "turn 3 (gpt)" in image_token_problem(merged)
    assert image_token_problem(Sample("t", _conv("<image> hi", "yo"))) == \
        "1 <image> token(s) for 0 image(s)"


def test_per_turn_extras_survive_merging():
    img = [b"png"]
    a = Sample("a", [{"from": "human", "value": "<image>\nQ1", "weight": 0},
                     {"from": "gpt", "value": "A1", "weight": 1}], img, ["png"])
    b = Sample("b", [{"from": "human", "value": "<image>\nQ2", "weight": 0},
                     {"from": "gpt", "value": "A2", "weight": 0.5}], img, ["png"])
    [m] = merge_group([a, b], MergeConfig())
    assert [t.get("weight") for t in m.conversations] == [0, 1, 0, 0.5]
    assert Counter(t["value"].count("<image>") for t in m.conversations) == {1: 1, 0: 3}
