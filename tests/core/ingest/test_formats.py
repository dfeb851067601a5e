import io
import json

from mm_assets.core.ingest.formats import iter_json_values, make_key, normalise


def test_llava_record_with_image_list_and_int_id():
    rec = normalise({"id": 7, "image": ["a.jpg", "b.jpg"], "conversations": [
        {"from": "human", "value": "<image><image>Compare."}, {"from": "gpt", "value": "Same."}]},
        "k", "src", "f:0")
    assert rec.reason is None
    assert rec.image_refs == ["a.jpg", "b.jpg"]
    assert [t["from"] for t in rec.conversations] == ["human", "gpt"]
    assert rec.metadata["id"] == 7


def test_sharegpt_messages_and_content_parts():
    rec = normalise({"messages": [{"role": "user", "content": "<image>Who?"},
                                  {"role": "assistant", "content": "A cat."}],
                     "images": ["1.jpg"]}, "k", "s", "f:0")
    assert rec.conversations[1] == {"from": "gpt", "value": "A cat."}
    assert rec.image_refs == ["1.jpg"]
    parts = normalise({"messages": [
        {"role": "user", "content": [{"type": "image_url", "value": "x.jpg"},
                                     {"type": "text", "value": "What?"}]},
        {"role": "assistant", "content": [{"type": "text", "value": "A dog."}]}]},
        "k", "s", "f:0")
    assert parts.image_refs == ["x.jpg"]
    assert parts.conversations[0]["value"] == "<image>\nWhat?"


def test_unusable_records_get_reasons():
    assert normalise({"video": "v.mp4", "conversations": []}, "k", "s", "l").reason == \
        "unsupported_modality"
    assert normalise({"id": 1}, "k", "s", "l").reason == "missing_conversations"
    bad_role = normalise({"conversations": [{"from": "robot", "value": "x"}]}, "k", "s", "l")
    assert bad_role.reason == "unknown_role"
    assert normalise([1, 2], "k", "s", "l").reason == "bad_record"


def test_instruction_output_records_get_an_image_token():
    rec = normalise({"id": "q1", "image": "c.jpg", "instruction": "Describe.", "output": "A."},
                    "k", "s", "l")
    assert rec.conversations[0]["value"] == "<image>\nDescribe."


def test_jsonl_keeps_reading_after_a_bad_line():
    data = b'{"a": 1}\n{"broken": \n\xff\xfe\n{"a": 2}\n'
    out = list(iter_json_values(io.BytesIO(data), "x"))
    assert [v for _, v, e in out if e is None] == [{"a": 1}, {"a": 2}]
    errors = [e for _, _, e in out if e]
    assert len(errors) == 2 and errors[0].startswith("bad_json")


def test_json_array_streams_and_reports_a_broken_tail():
    good = json.dumps([{"i": i} for i in range(5)]).encode()
    assert [v["i"] for _, v, _ in iter_json_values(io.BytesIO(good), "x")] == list(range(5))
    broken = good[:-10]
    out = list(iter_json_values(io.BytesIO(broken), "x"))
    assert out[-1][2].startswith("bad_json")
    assert all(e is None for _, _, e in out[:-1])


def test_keys_are_unique_when_ids_repeat_and_safe_for_webdataset():
    a, b = make_key("src", 0, "x.y/z"), make_key("src", 1, "x.y/z")
    assert a != b
    assert "." not in a and "/" not in a
