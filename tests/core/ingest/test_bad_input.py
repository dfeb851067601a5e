"""Every sample accounted for: bad images, bad records, broken WebDataset tars."""

import io
import json
import tarfile
from collections import Counter

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mm_assets.core.ingest.plan import IngestConfig, plan_ingest, read_manifest
from mm_assets.core.ingest.rawshard import RawShardConfig, build_samples
from mm_assets.core.storage import Store

BROKEN = {"broken.png": "corrupt_image", "broken_data_stream.png": "corrupt_image",
          "decompression_bomb.gif": "decompression_bomb",
          "png_decompression_dos.png": "decompression_bomb",
          "truncated_end_chunk.png": "truncated_image", "truncated_image.png": "truncated_image",
          "truncated_jpeg.jpg": "truncated_image", "zero_width.gif": "corrupt_image"}


def _conv(q="<image>\nWhat is this?", a="A picture."):
    return [{"from": "human", "value": q}, {"from": "gpt", "value": a}]


def _build(tmp_path, inputs, image_root=None):
    store = Store(str(tmp_path / "root"))
    shards = plan_ingest(store, [str(p) for p in inputs], image_root,
                         IngestConfig(shard_size=10_000))
    out, quarantine, n_in = [], [], 0
    for sh in shards:
        header, records = read_manifest(store, sh)
        n_in += len(records)
        out += list(build_samples(header, records, RawShardConfig(max_pixels=50_000_000),
                                  quarantine))
    return out, quarantine, n_in


def _png(color=(200, 10, 10), size=(24, 24), fmt="PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, fmt)
    return buf.getvalue()


def test_edge_images_each_get_the_expected_outcome(tmp_path, pillow_images):
    files = sorted(p for p in pillow_images.rglob("*") if p.is_file())
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "zero.png").write_bytes(b"")
    (tmp_path / "img" / "png_named.jpg").write_bytes(_png())
    recs = [{"id": str(p.relative_to(pillow_images)), "image": str(p.relative_to(pillow_images)),
             "conversations": _conv()} for p in files]
    src = tmp_path / "edge.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    out, quarantine, n_in = _build(tmp_path, [src], str(pillow_images))
    assert n_in == len(files) == len(out) + len(quarantine)
    got = {q.key.split("-", 2)[2]: q.reason for q in quarantine}
    expected = {k.replace(".", "_"): v for k, v in BROKEN.items()}
    assert got == expected
    kept = {s.metadata["id"]: s for s in out}
    assert kept["pil_sample_cmyk.jpg"].image_exts == ["jpg"]
    assert kept["hopper.webp"].image_exts == ["webp"]
    extra = tmp_path / "extra.jsonl"
    extra.write_text(json.dumps({"image": "zero.png", "conversations": _conv()}) + "\n"
                     + json.dumps({"image": "png_named.jpg", "conversations": _conv()}) + "\n")
    out2, q2, _ = _build(tmp_path / "b", [extra], str(tmp_path / "img"))
    assert [q.reason for q in q2] == ["empty_image"]
    assert out2[0].image_exts == ["png"]  # the content decides, not the name


def test_bad_records_each_get_a_reason(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "ok.png").write_bytes(_png())
    lines = [json.dumps(r) for r in [
        {"id": 1, "image": "ok.png", "conversations": _conv()},
        {"id": 1, "image": "ok.png", "conversations": _conv(a="Same id again.")},
        {"id": 2, "conversations": _conv("Text only?", "Yes.")},
        {"id": 3, "image": "missing.png", "conversations": _conv()},
        {"id": 4, "image": "../escape.png", "conversations": _conv()},
        {"id": 5, "image": "/etc/passwd", "conversations": _conv()},
        {"id": 6, "video": "v.mp4", "conversations": _conv()},
        {"id": 7, "image": "ok.png"},
        {"id": 8, "conversations": _conv("   ", "x")},
        {"id": 9, "conversations": [{"from": "alien", "value": "hi"}]},
        {"id": 10, "conversations": _conv("q", "x" * 300_000)},
        {"id": 11, "image": ["ok.png", "ok.png"], "conversations": _conv()},
    ]] + ["{not json", "\xff\xfe"]
    src = tmp_path / "recs.jsonl"
    src.write_bytes(("\n".join(lines) + "\n").encode("utf-8", errors="surrogateescape")
                    .replace("\xff\xfe".encode(), b"\xff\xfe"))
    out, quarantine, n_in = _build(tmp_path, [src], str(tmp_path / "img"))
    assert n_in == 14 == len(out) + len(quarantine)
    assert len(out) == 3 and len({s.key for s in out}) == 3  # repeated id, unique keys
    assert Counter(q.reason for q in quarantine) == Counter({
        "missing_image": 1, "unsafe_path": 2, "unsupported_modality": 1,
        "missing_conversations": 1, "empty_text": 1, "unknown_role": 1, "text_too_long": 1,
        "image_token_mismatch": 1, "bad_json": 1, "bad_encoding": 1})


def test_one_corrupt_image_among_100_loses_only_that_sample(tmp_path):
    (tmp_path / "img").mkdir()
    for i in range(100):
        data = _png((i, 2 * i, 3)) if i != 57 else _noisy_jpeg()[:-300]
        (tmp_path / "img" / f"{i}.png").write_bytes(data)
    src = tmp_path / "hundred.jsonl"
    src.write_text("\n".join(json.dumps({"id": i, "image": f"{i}.png", "conversations": _conv()})
                             for i in range(100)) + "\n")
    out, quarantine, _ = _build(tmp_path, [src], str(tmp_path / "img"))
    assert len(out) == 99 and [q.key.endswith("-57") for q in quarantine] == [True]
    assert quarantine[0].reason == "truncated_image"


def _noisy_jpeg() -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _tar(path, members, truncate_at=None):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    path.write_bytes(raw[:truncate_at] if truncate_at else raw)


def test_broken_webdataset_tars(tmp_path):
    cap = b"a red square"
    _tar(tmp_path / "kinds.tar", [("a.png", _png()), ("a.txt", cap),
                                  ("sub/b.webp", _png(fmt="WEBP")), ("sub/b.txt", cap),
                                  ("c.jpeg", _png(fmt="JPEG")), ("c.txt", cap)])
    _tar(tmp_path / "dups.tar", [("x.png", _png()), ("x.txt", cap), ("y.txt", cap),
                                 ("x.jpg", _png(fmt="JPEG")), ("x.txt", cap)])
    big = _png(size=(300, 300), color=(1, 2, 3))
    _tar(tmp_path / "trunc.tar", [("k1.txt", cap), ("k2.png", big), ("k2.txt", cap)],
         truncate_at=1024 + 512 + 300)
    out, quarantine, _ = _build(tmp_path, [tmp_path / "kinds.tar"])
    assert sorted(s.image_exts[0] for s in out) == ["jpg", "png", "webp"] and not quarantine
    out, quarantine, _ = _build(tmp_path / "d", [tmp_path / "dups.tar"])
    assert len(out) == 2 and [q.reason for q in quarantine] == ["duplicate_key"]
    out, quarantine, _ = _build(tmp_path / "t", [tmp_path / "trunc.tar"])
    assert [s.conversations[-1]["value"] for s in out] == ["a red square"]
    assert [q.reason for q in quarantine] == ["truncated_tar"]
    assert "trunc.tar" in quarantine[0].error
    # cut exactly at a member boundary: tarfile ends silently there; it must not look whole
    members = [("k1.txt", cap), ("k2.png", big), ("k2.txt", cap), ("k3.txt", cap)]
    _tar(tmp_path / "whole.tar", members)
    with tarfile.open(tmp_path / "whole.tar") as tf:
        at = {m.name: m.offset for m in tf.getmembers()}
    for cut in (at["k3.txt"], at["k2.txt"], at["k3.txt"] + 100):  # between / inside samples,
        _tar(tmp_path / f"cut{cut}.tar", members, truncate_at=cut)  # inside a header
        out, quarantine, _ = _build(tmp_path / f"c{cut}", [tmp_path / f"cut{cut}.tar"])
        # the sample before the cut may have lost members: only the ones before it are kept
        assert len(out) == 1 and out[0].key.endswith("k1"), [s.key for s in out]
        assert [q.reason for q in quarantine] == ["truncated_tar"], quarantine
        assert "end-of-archive block" in quarantine[0].error
    out, quarantine, _ = _build(tmp_path / "w", [tmp_path / "whole.tar"])
    assert len(out) == 3 and not quarantine


def test_shared_webdataset_shards_ingest_or_are_rejected_by_name(tmp_path, shared):
    wds = shared / "wds" / "webdataset" / "testdata"
    out, q, _ = _build(tmp_path, [wds / "compressed.tar", wds / "testgz.tar"])
    assert len(out) == 3 + 1000 and not q  # .txt.gz members decompressed; folder member fine
    out, q, _ = _build(tmp_path / "m", [wds / "mpdata.tar"])
    assert not out and len(q) == 100 and {x.reason for x in q} == {"no_text"}
    assert "mpdata.tar:mpdata-000000" in q[0].error and "members: mp" in q[0].error
    vid = shared / "wds" / "video2dataset" / "tests" / "test_files" / "return_all_test.tar"
    out, q, _ = _build(tmp_path / "v", [vid])
    assert not out and Counter(x.reason for x in q) == Counter({"unsupported_modality": 6})


record = st.fixed_dictionaries({}, optional={
    "id": st.one_of(st.integers(), st.text(max_size=8)),
    "image": st.one_of(st.just("ok.png"), st.just("nope.png"), st.just("../x.png"),
                       st.lists(st.just("ok.png"), max_size=3)),
    "conversations": st.lists(st.fixed_dictionaries({
        "from": st.sampled_from(["human", "gpt", "user", "robot"]),
        "value": st.one_of(st.text(max_size=20), st.just("<image>\nq"))}), max_size=4),
    "video": st.just("v.mp4")})


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(record, st.just("garbage")), max_size=25))
def test_accounting_invariant_holds_for_any_records(tmp_path_factory, records):
    tmp = tmp_path_factory.mktemp("h")
    (tmp / "img").mkdir()
    (tmp / "img" / "ok.png").write_bytes(_png())
    src = tmp / "gen.jsonl"
    src.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    out, quarantine, n_in = _build(tmp, [src], str(tmp / "img"))
    assert n_in == len(records) == len(out) + len(quarantine)
    assert len({s.key for s in out} | {q.key for q in quarantine}) == len(records)


def test_coco_records_without_images_are_quarantined_as_missing(tmp_path, shared):
    src = shared / "llava" / "LLaVA" / "playground" / "data" / "coco2014_val_gpt4_qa_30x3.jsonl"
    out, quarantine, n_in = _build(tmp_path, [src])
    assert n_in == 90 and not out
    assert Counter(q.reason for q in quarantine) == Counter({"missing_image": 90})
    assert all("COCO_val2014_" in q.error for q in quarantine)


def test_odd_images_and_empty_text_each_get_hashes_or_a_reason(tmp_path, pillow_images):
    from mm_assets.core.dedup.exact import hash_samples

    names = ["pil_sample_cmyk.jpg", "apng/mode_16bit.png", "p_trns_single.png", "chi.gif",
             "hopper_orientation_6.jpg", "hopper_16bit.pgm"]
    recs = [{"id": n, "image": n, "conversations": _conv()} for n in names]
    recs.append({"id": "empty", "image": names[0], "conversations": _conv(a=" \n\t")})
    src = tmp_path / "odd.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    out, quarantine, _ = _build(tmp_path, [src], str(pillow_images))
    assert [q.reason for q in quarantine] == ["empty_text"]
    table = hash_samples(out, 64_000_000)
    assert table.height == len(names)
    for row in table.iter_rows(named=True):
        assert len(row["pixel_hashes"][0]) == 32 and len(row["bytes_hashes"][0]) == 32
        flat = "mode_16bit" in row["key"]  # its first frame is one flat colour: no pHash
        assert len(row["phashes"]) == (0 if flat else 1), row["key"]


def test_a_corrupt_image_message_names_no_memory_address():
    """Pillow's ``<_io.BytesIO object at 0x…>`` would name nothing and differ between runs."""
    import pytest as _pytest

    from mm_assets.core.ingest.images import ImageError, sniff_ext

    with _pytest.raises(ImageError) as err:
        sniff_ext(b"definitely not an image")
    assert err.value.reason == "corrupt_image"
    assert "0x" not in str(err.value) and "the image bytes" in str(err.value)
