"""pool_assign core: FAISS assignment against brute force, a real pool shard embedded with the
corpus encoder (EfficientNet-Lite0), quarantine reasons, and the encoder check."""

from __future__ import annotations

import io
import json
import tarfile

import numpy as np
import pytest
from pool_world import build_corpus, encoder

from mm_assets.core import layout
from mm_assets.core.commits import write_commit
from mm_assets.core.dedup.hashing import hamming, hash_image
from mm_assets.core.mine.assign import (
    AssignConfig,
    assign_vectors,
    centroid_index,
    process_pool_shard,
)
from mm_assets.core.mine.pool_encoder import (
    EncoderMismatchError,
    check_pool_encoder,
    encoder_identity,
)
from mm_assets.core.mine.poolgen import PoolGenConfig, generate_pool
from mm_assets.core.records import StageCounts
from mm_assets.core.semantic.embed_cache import encoder_fingerprint
from mm_assets.core.shards import read_tar_span


def _unit(rng, n, d):
    x = rng.normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_assignment_matches_brute_force():
    rng = np.random.default_rng(0)
    cents, x = _unit(rng, 7, 32), _unit(rng, 1000, 32).astype(np.float16)
    c, s, c2, s2 = assign_vectors(x, centroid_index(cents * 3.0), block_rows=97)  # any scale
    sims = x.astype(np.float32) @ cents.T
    order = np.argsort(-sims, axis=1)
    assert (c == order[:, 0]).all() and (c2 == order[:, 1]).all()
    np.testing.assert_allclose(s, sims[np.arange(1000), order[:, 0]], atol=1e-5)
    np.testing.assert_allclose(s2, sims[np.arange(1000), order[:, 1]], atol=1e-5)
    assert c.dtype == np.int32 and s.dtype == np.float32 and (s >= s2).all()


def test_single_centroid_and_bad_shapes():
    rng = np.random.default_rng(1)
    c, _, c2, s2 = assign_vectors(_unit(rng, 5, 8), centroid_index(_unit(rng, 1, 8)))
    assert (c == 0).all() and (c2 == -1).all() and np.isnan(s2).all()
    with pytest.raises(ValueError, match="D=9"):
        assign_vectors(_unit(rng, 5, 9), centroid_index(_unit(rng, 3, 8)))
    with pytest.raises(ValueError, match="K >= 1"):
        centroid_index(np.zeros((0, 8), np.float32))
    c, _s, c2, s2 = assign_vectors(np.zeros((0, 8), np.float16), centroid_index(_unit(rng, 3, 8)))
    assert len(c) == len(s2) == 0


def test_cuda_device_without_faiss_gpu_is_a_clear_error():
    import faiss

    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        pytest.skip("faiss-gpu with a GPU: covered by bench/bench_pool_assign.py --device cuda")
    with pytest.raises(RuntimeError, match="faiss-gpu"):
        centroid_index(np.eye(4, dtype=np.float32), "cuda")
    with pytest.raises(ValueError, match="device"):
        AssignConfig(device="tpu")


def _odd_shard(path):
    """Hand-written shard: json caption, empty caption, no image, duplicate key, bad utf-8,
    then a truncated archive."""
    ok = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (40, 30), (200, 10, 10)).save(ok, "PNG")
    members = [("a.png", ok.getvalue()), ("a.json", json.dumps({"caption": "red"}).encode()),
               ("b.png", ok.getvalue()), ("b.txt", b"   "),
               ("c.txt", b"no image here"),
               ("a.webp", ok.getvalue()), ("a.txt", b"again"),
               ("d.png", ok.getvalue()), ("d.txt", b"\xff\xfe bad"),
               ("g.PNG", ok.getvalue()), ("g.txt", b"upper-case extension")]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in members + [("e.png", ok.getvalue() * 40)]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        cut = tf.getmember("e.png").offset_data + 100
    path.write_bytes(buf.getvalue()[:cut])  # the archive ends inside e.png


def test_odd_members_are_quarantined_with_reasons(tmp_path):
    _odd_shard(tmp_path / "odd.tar")
    index = centroid_index(np.eye(4, 1280, dtype=np.float32))
    res = process_pool_shard(str(tmp_path / "odd.tar"), "p", "odd", encoder(), index,
                             AssignConfig(chunk_size=2))
    assert res.table["key"].to_list() == ["p/odd/a", "p/odd/g"]
    assert res.table["caption"].to_list() == ["red", "upper-case extension"]
    assert dict(res.counts.quarantined) == {"empty_caption": 1, "missing_image": 1,
                                            "duplicate_key": 1, "bad_caption": 1,
                                            "truncated_tar": 1}
    assert res.counts.reconciles() and res.counts.n_in == 7
    assert {q.key for q in res.quarantined} >= {"p/odd/b", "p/odd/c", "p/odd/d", "p/odd/_tail"}


def test_garbage_jpeg_is_corrupt_and_a_cut_jpeg_truncated(tmp_path):
    """Pillow reports bytes after a JPEG start marker that are no JPEG as "Truncated File
    Read": that is an undecodable image (corrupt_image, as ingest names bytes no decoder
    reads), not a truncated one; a real JPEG cut short stays truncated_image."""
    from PIL import Image

    jpg = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (96, 128, 3), np.uint8)).save(
        jpg, "JPEG")
    garbage = b"\xff\xd8\xff\xe0" + np.random.default_rng(1).bytes(3000)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("g.jpg", garbage), ("g.txt", b"garbage"),
                           ("t.jpg", jpg.getvalue()[:len(jpg.getvalue()) * 2 // 3]), ("t.txt", b"cut"),
                           ("z.jpg", b"plain text, not an image"), ("z.txt", b"text")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    (tmp_path / "s.tar").write_bytes(buf.getvalue())
    res = process_pool_shard(str(tmp_path / "s.tar"), "p", "s", encoder(),
                             centroid_index(np.eye(4, 1280, dtype=np.float32)), AssignConfig())
    assert {q.key: q.reason for q in res.quarantined} == {
        "p/s/g": "corrupt_image", "p/s/t": "truncated_image", "p/s/z": "corrupt_image"}
    assert res.counts.n_in == 3 and res.counts.n_out == 0 and res.counts.reconciles()


@pytest.mark.parametrize("content, reason", [
    (b"name,caption\nx,y\n" * 100, "not_a_tar"),  # a CSV named .tar
    (b"", "not_a_tar"),
    (None, "truncated_tar"),  # a real tar cut inside its first header
])
def test_a_file_that_is_no_tar_is_not_a_tar(tmp_path, content, reason):
    if content is None:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            info = tarfile.TarInfo("a.txt")
            info.size = 3
            tf.addfile(info, io.BytesIO(b"abc"))
        content = buf.getvalue()[:300]
    (tmp_path / "x.tar").write_bytes(content)
    res = process_pool_shard(str(tmp_path / "x.tar"), "p", "x", encoder(),
                             centroid_index(np.eye(4, 1280, dtype=np.float32)), AssignConfig())
    assert [(q.key, q.reason) for q in res.quarantined] == [("p/x/_file", reason)]
    assert res.counts.n_in == 1 and res.counts.reconciles()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool_corpus") / "root"
    return build_corpus(str(root))


def test_pool_shard_hashes_embeds_and_assigns(corpus, tmp_path):
    store, keys = corpus
    from mm_assets.core.commits import committed  # noqa: F401  (corpus is committed)
    from mm_assets.core.mine.poolgen import corpus_images

    images = corpus_images(store, 100)
    assert [k for k, _ in images] == keys
    cfg = PoolGenConfig(n=8, shard_size=100, n_exact=3, n_resized=3, n_flipped=2, n_broken=1,
                        n_no_caption=1, size=120, seed=7)
    truth = generate_pool(str(tmp_path / "pool"), cfg, images)
    index = centroid_index(np.asarray(store.read_npy(layout.centroids("image"))))
    res = process_pool_shard(str(tmp_path / "pool" / "00000000.tar"), "gen", "00000000",
                             encoder(), index, AssignConfig(chunk_size=5))
    assert res.counts.n_in == 18 and res.counts.n_out == 16 and res.counts.reconciles()
    assert dict(res.counts.quarantined) == {"truncated_image": 1, "missing_caption": 1}
    t = res.table
    assert t["row"].to_list() == list(range(16))
    assert res.vectors.shape == (16, 1280) and res.vectors.dtype == np.float16
    np.testing.assert_allclose(np.linalg.norm(res.vectors.astype(np.float32), axis=1), 1,
                               atol=2e-3)
    cents = np.array(store.read_npy(layout.centroids("image")), np.float32)
    cents /= np.linalg.norm(cents, axis=1, keepdims=True)
    sims = res.vectors.astype(np.float32) @ cents.T
    assert (t["cluster"].to_numpy() == sims.argmax(1)).all()
    np.testing.assert_allclose(t["sim"].to_numpy(), sims.max(1), atol=1e-4)
    assert (t["sim"].to_numpy() >= t["sim2"].to_numpy()).all()
    by_key = {r["wds_key"]: r for r in t.iter_rows(named=True)}
    src = dict(images)
    data = (tmp_path / "pool" / "00000000.tar").read_bytes()
    for r in t.iter_rows(named=True):  # each recorded byte span is that sample alone
        [(k, parts)] = read_tar_span(data[r["span_start"]:r["span_end"]])
        assert k == r["wds_key"] and r["caption"] == parts["txt"].decode()
    assert t["span_start"].is_sorted() and (t["span_start"][1:] >= t["span_end"][:-1]).all()
    for row in truth.filter(truth["how"].is_not_null()).iter_rows(named=True):
        got, orig = by_key[row["wds_key"]], hash_image(src[row["copy_of"]], 10**8)
        assert got["cluster"] == keys.index(row["copy_of"]), row  # nearest = its original
        if row["how"] == "exact":
            assert (got["bytes_hash"], got["pixel_hash"], got["phash"]) == \
                (orig.bytes_hash, orig.pixel_hash, orig.phash)
            assert got["sim"] > 0.999
        elif row["how"] == "resized":
            assert got["sim"] > 0.8 and hamming(got["phash"], orig.phash) <= 8
        else:
            assert hamming(got["phash_flip"], orig.phash) <= 8
    fresh = t.filter(~t["wds_key"].is_in(truth.filter(truth["how"].is_not_null())["wds_key"]
                                         .implode()))
    assert fresh.height == 8 and (fresh["sim"] < 0.99).all()


def test_encoder_check_refuses_another_encoder(corpus):
    store, _ = corpus
    enc = encoder()
    fp = encoder_fingerprint(enc, True, 64_000_000)
    ident = check_pool_encoder(store, enc, fp)
    assert ident["model"] == "efficientnet_lite0" and ident["dim"] == 1280
    assert len(ident["weights_sha256"]) == 16 and ident["fingerprint"] == fp

    class Other:
        name, pretrained, dim, device, backend = "ViT-B-32", None, 512, "cpu", "torch"

    with pytest.raises(EncoderMismatchError) as e:
        check_pool_encoder(store, Other(), "abc")
    msg = str(e.value)
    assert "ViT-B-32" in msg and "random-init" in msg and "efficientnet_lite0" in msg
    assert ident["weights_sha256"] in msg
    # the same model on another device or backend is the same encoder
    assert check_pool_encoder(store, type("Gpu", (), {
        "name": enc.name, "pretrained": enc.pretrained, "dim": enc.dim, "device": "cuda",
        "backend": "torch"})(), "other-fp")["device"] == "cuda"
    rel = layout.embedding_encoder("000000")
    saved = store.read_bytes(rel)
    try:
        store.rm(rel)  # an older root: no identity recorded, the fingerprint folder decides
        assert check_pool_encoder(store, enc, fp)["fingerprint"] == fp
        with pytest.raises(EncoderMismatchError, match="no encoder.json recorded"):
            check_pool_encoder(store, enc, "0123456789abcdef")
        write_commit(store, "embeddings", "000001", StageCounts(1, 1))  # a second shard
        store.write_bytes(layout.embedding_encoder("000001"), json.dumps(
            {**encoder_identity(Other()), "fingerprint": "abc"}).encode())
        store.write_bytes(rel, saved)
        with pytest.raises(EncoderMismatchError, match="mix encoders"):
            check_pool_encoder(store, enc, fp)
    finally:
        store.write_bytes(rel, saved)
        store.rm(layout.commit("embeddings", "000001"))
        store.rm(layout.embedding_encoder("000001"))
