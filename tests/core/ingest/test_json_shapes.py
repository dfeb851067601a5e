"""Every ordinary JSON file shape ingests as its records (issue 19, items 1, 5, 6)."""

import json
from collections import Counter

import pytest

from mm_assets.core.ingest.plan import IngestConfig, plan_ingest, read_manifest
from mm_assets.core.ingest.rawshard import RawShardConfig, build_samples
from mm_assets.core.storage import Store

BOM = "\ufeff"


def _rec(i, **extra):
    return {"id": f"p{i}", "conversations": [{"from": "human", "value": f"What is {i} + {i}?"},
                                             {"from": "gpt", "value": f"{2 * i}."}], **extra}


def _build(tmp_path, files, images=None):
    """Ingest ``files`` and build their raw samples: (samples, quarantine, manifest records)."""
    store = Store(str(tmp_path / "root"))
    shards = plan_ingest(store, [str(p) for p in files], images, IngestConfig(shard_size=1000))
    out, quarantine, records = [], [], []
    for sh in shards:
        header, recs = read_manifest(store, sh)
        records += recs
        out += list(build_samples(header, recs, RawShardConfig(), quarantine))
    assert len(records) == len(out) + len(quarantine)
    return out, quarantine, records


def _write(path, text, bom=False, crlf=False):
    text = (BOM if bom else "") + text
    path.write_bytes((text.replace("\n", "\r\n") if crlf else text).encode())
    return path


def _shapes(n=3):
    recs = [_rec(i) for i in range(n)]
    return {
        "array.json": json.dumps(recs, indent=2),
        "lines.jsonl": "".join(json.dumps(r) + "\n" for r in recs),
        "dict.json": json.dumps({r["id"]: {k: v for k, v in r.items() if k != "id"}
                                 for r in recs}, indent=2),
        "wrapper.json": json.dumps({"version": "1.0", "info": {"n": n}, "data": recs},
                                   indent=2),
    }


@pytest.mark.parametrize("bom,crlf", [(False, False), (True, False), (False, True), (True, True)])
@pytest.mark.parametrize("name", list(_shapes()))
def test_every_shape_gives_its_records_with_bom_and_crlf(tmp_path, name, bom, crlf):
    src = _write(tmp_path / name, _shapes()[name], bom, crlf)
    out, quarantine, _ = _build(tmp_path, [src])
    assert not quarantine, [q.error for q in quarantine]
    assert sorted(s.metadata["id"] for s in out) == ["p0", "p1", "p2"]
    assert sorted(s.conversations[1]["value"] for s in out) == ["0.", "2.", "4."]


@pytest.mark.parametrize("bom,crlf", [(False, False), (True, True)])
def test_a_pretty_printed_single_object_is_one_record(tmp_path, bom, crlf):
    src = _write(tmp_path / "one.json", json.dumps(_rec(7), indent=2), bom, crlf)
    out, quarantine, records = _build(tmp_path, [src])
    assert len(records) == 1 and not quarantine
    assert out[0].metadata["id"] == "p7"


def test_dict_keyed_by_id_uses_the_key_when_the_record_has_no_id(tmp_path):
    data = {f"q{i}": {"conversations": _rec(i)["conversations"]} for i in range(1000)}
    data["q5"]["id"] = "own-id"
    src = _write(tmp_path / "bench.json", json.dumps(data))  # minified, one line
    out, quarantine, records = _build(tmp_path, [src])
    assert len(records) == 1000 and len(out) == 1000 and not quarantine
    ids = [s.metadata["id"] for s in out]
    assert ids[:3] == ["q0", "q1", "q2"] and ids[5] == "own-id"
    assert out[1].key.endswith("-q1")


def test_wrapper_object_reads_its_one_list_of_records(tmp_path):
    from mm_assets.core.ingest.plan import ingest_inputs

    payload = {"info": {"name": "bench", "version": 2}, "license": "cc-by",
               "annotations": [_rec(i) for i in range(2080)]}
    src = _write(tmp_path / "wrapped.json", json.dumps(payload, indent=1))
    store = Store(str(tmp_path / "root"))
    [summary] = ingest_inputs(store, [str(src)], None, IngestConfig(shard_size=1000))
    assert (summary.shape, summary.records, len(summary.shards)) == ("wrapper", 2080, 3)
    assert "'annotations'" in summary.detail and "'annotations'" in summary.line()
    assert sum(len(read_manifest(store, sh)[1]) for sh in summary.shards) == 2080


def test_bom_no_longer_costs_records(tmp_path):
    recs = [_rec(i) for i in range(3)]
    arr = _write(tmp_path / "arr.json", json.dumps(recs), bom=True)
    lines = _write(tmp_path / "lines.jsonl", "".join(json.dumps(r) + "\n" for r in recs),
                   bom=True)
    out, quarantine, records = _build(tmp_path, [arr, lines])
    assert (len(records), len(out), len(quarantine)) == (6, 6, 0)


def test_summary_names_shape_and_records_per_input_and_counts_reconcile(tmp_path):
    from mm_assets.core.ingest.plan import ingest_inputs

    files = {n: _write(tmp_path / n, t) for n, t in _shapes(5).items()}
    files["lines.jsonl"].write_text(files["lines.jsonl"].read_text() + "{broken\n")
    store = Store(str(tmp_path / "root"))
    summaries = ingest_inputs(store, [str(p) for p in files.values()], None,
                              IngestConfig(shard_size=2))
    got = {s.input.rsplit("/", 1)[-1]: (s.shape, s.records) for s in summaries}
    assert got == {"array.json": ("array", 5), "lines.jsonl": ("jsonl", 6),
                   "dict.json": ("dict", 5), "wrapper.json": ("wrapper", 5)}
    for s in summaries:
        manifests = [read_manifest(store, sh) for sh in s.shards]
        assert all(h["input"] == s.input and h["shape"] == s.shape for h, _ in manifests)
        assert sum(len(r) for _, r in manifests) == s.records
    assert summaries[1].flagged == {"bad_json": 1}
    again = ingest_inputs(store, [str(files["array.json"])], None, IngestConfig())
    assert again[0].shape == "already_ingested" and not again[0].shards


@pytest.mark.parametrize("text,found", [
    ("42", "top-level number"),
    ('"just a string"', "top-level string"),
    (json.dumps({"train": [_rec(0)], "test": [_rec(1)]}), "2 lists of records"),
    (json.dumps({"meta": {"a": 1}, "version": 3}), "neither a record"),
])
def test_an_unrecognised_shape_fails_with_one_line_naming_it(tmp_path, text, found):
    good = _write(tmp_path / "good.json", json.dumps([_rec(0)]))
    bad = _write(tmp_path / "odd.json", text)
    store = Store(str(tmp_path / "root"))
    with pytest.raises(ValueError, match="unrecognised JSON shape") as e:
        plan_ingest(store, [str(good), str(bad)], None, IngestConfig())
    msg = str(e.value)
    assert "\n" not in msg and "odd.json" in msg and found in msg
    assert not store.exists("inputs/_state.json")  # checked before anything is written


def test_empty_inputs_are_reported_as_empty(tmp_path):
    from mm_assets.core.ingest.plan import ingest_inputs

    empty = _write(tmp_path / "zero.jsonl", "")
    blank = _write(tmp_path / "blank.json", "\n  \r\n", bom=True)
    store = Store(str(tmp_path / "root"))
    summaries = ingest_inputs(store, [str(empty), str(blank)], None, IngestConfig())
    assert [(s.shape, s.records, s.shards) for s in summaries] == [("empty", 0, [])] * 2
    assert "empty" in summaries[0].line() and "already" not in summaries[0].line()


def test_a_missing_images_folder_is_refused_up_front(tmp_path):
    src = _write(tmp_path / "a.json", json.dumps([_rec(0)]))
    store = Store(str(tmp_path / "root"))
    with pytest.raises(FileNotFoundError, match="image folder .*nope.* does not exist"):
        plan_ingest(store, [str(src)], str(tmp_path / "nope"), IngestConfig())
    assert not store.exists("inputs/_state.json")


def test_plain_text_jsonl_documents_are_text_only_samples(tmp_path):
    docs = [{"text": f"Document number {i}. It has two sentences.", "url": f"u{i}"}
            for i in range(3)]
    src = _write(tmp_path / "docs.jsonl", "".join(json.dumps(d) + "\n" for d in docs))
    out, quarantine, _ = _build(tmp_path, [src])
    assert not quarantine and len(out) == 3
    s = out[0]
    assert s.is_text_only and s.conversations == [
        {"from": "gpt", "value": "Document number 0. It has two sentences."}]
    assert s.metadata["text_kind"] == "document" and s.metadata["url"] == "u0"


def test_llava_eval_question_files_get_a_reason_naming_the_format(tmp_path):
    qs = [{"question_id": i, "image": f"{i}.jpg", "text": "What is shown?", "category": "conv"}
          for i in range(2)]
    src = _write(tmp_path / "questions.jsonl", "".join(json.dumps(q) + "\n" for q in qs))
    out, quarantine, _ = _build(tmp_path, [src])
    assert not out
    assert Counter(q.reason for q in quarantine) == {"llava_eval_questions": 2}
    assert "LLaVA eval question file" in quarantine[0].error


def test_per_turn_extras_and_nested_metadata_are_kept_and_written_back(tmp_path):
    from mm_assets.core.shards import read_samples, write_samples

    rec = {"id": "x", "meta": {"source": {"name": "ov", "split": "train"}, "tags": ["a", "b"]},
           "long_note": "n" * 2000,
           "conversations": [{"from": "human", "value": "Hi?", "weight": 0},
                             {"from": "gpt", "value": "Hello.", "weight": 1, "loss": True}]}
    src = _write(tmp_path / "ov.json", json.dumps([rec]))
    [s], _, _ = _build(tmp_path, [src])
    path = tmp_path / "shard.tar"
    with open(path, "wb") as f:
        write_samples(f, [s])
    with open(path, "rb") as f:
        [back] = list(read_samples(f))
    assert back.conversations == [{"from": "human", "value": "Hi?", "weight": 0},
                                  {"from": "gpt", "value": "Hello.", "weight": 1, "loss": True}]
    assert back.metadata["meta"] == rec["meta"] and back.metadata["long_note"] == "n" * 2000


def test_a_turn_that_is_not_an_object_is_counted_not_dropped(tmp_path):
    rec = {"id": "x", "conversations": [{"from": "human", "value": "Q?"}, "stray", {
        "from": "gpt", "value": "A."}]}
    src = _write(tmp_path / "t.json", json.dumps([rec]))
    out, quarantine, _ = _build(tmp_path, [src])
    assert not out and quarantine[0].reason == "bad_record" and "turn 1" in quarantine[0].error


def test_odd_content_parts_are_counted_or_refused_never_skipped(tmp_path):
    def msg(parts):
        return {"messages": [{"role": "user", "content": parts},
                             {"role": "assistant", "content": "A."}]}
    recs = [msg([{"type": "video", "video": "v.mp4"}, {"type": "text", "text": "What?"}]),
            msg(["a bare string part"]), msg([{"type": "hologram"}])]
    src = _write(tmp_path / "parts.json", json.dumps(recs))
    out, quarantine, _ = _build(tmp_path, [src])
    assert not out
    assert [q.reason for q in quarantine] == ["unsupported_modality", "bad_record", "bad_record"]
    assert "hologram" in quarantine[2].error
