"""Real encoder architectures with seeded random weights (architecture tests: SigLIP2/CLIP/DINOv2
weights cannot be installed offline; the pretrained default is tested in test_efficientnet.py)
and the exact-then-semantic dedup pipeline."""

import io

import numpy as np
import pytest
from PIL import Image

from mm_assets.core.ingest.images import decode, decode_rgb, to_rgb
from mm_assets.core.records import Sample
from mm_assets.core.semantic.cluster import ClusterConfig, spherical_kmeans
from mm_assets.core.semantic.embed import embed_images, embed_shard
from mm_assets.core.semantic.encoders import build_image_encoder, build_text_encoder
from mm_assets.core.semantic.semdedup import SemDedupConfig, semdedup_space

ODD = ["pil_sample_cmyk.jpg", "hopper_16bit.pgm", "apng/mode_16bit.png", "p_trns_single.png",
       "chi.gif", "uncompressed_la.png", "hopper_orientation_6.jpg", "transparent.webp"]


@pytest.mark.parametrize("name,dim", [("ViT-B-32", 512), ("ViT-B-16-SigLIP2", 768),
                                      ("vit_small_patch14_dinov2", 384),
                                      ("efficientnet_lite0", 1280)])
def test_real_architectures_embed_every_image_mode(pillow_images, name, dim):
    enc = build_image_encoder(name, None, "cpu")
    blobs = [(pillow_images / n).read_bytes() for n in ODD]
    vecs, errors = embed_images(blobs, enc, batch_size=4, num_workers=0,
                                max_pixels=64_000_000)
    assert errors == [""] * len(ODD)
    assert vecs.shape == (len(ODD), dim) and enc.dim == dim
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    assert np.isfinite(vecs).all()


@pytest.mark.parametrize("name,pretrained,side", [("ViT-B-32", None, 224),
                                                  ("vit_small_patch14_dinov2", None, 224),
                                                  ("efficientnet_lite0", "imagenet-1k", 256)])
def test_split_preprocessing_without_draft_is_bit_identical_to_the_model_transform(
        pillow_images, name, pretrained, side):
    import torch

    enc = build_image_encoder(name, pretrained, "cpu")
    assert enc.split is not None and enc.split.min_side == side
    blobs = [(pillow_images / n).read_bytes() for n in ODD]
    want = torch.stack([enc.preprocess(to_rgb(decode(b))) for b in blobs])
    u8 = [enc.split.to_uint8(decode_rgb(b)) for b in blobs]
    assert torch.equal(torch.from_numpy(enc.split.normalize_numpy(u8)), want)
    assert torch.equal(enc.split.normalize(torch.from_numpy(np.stack(u8))), want)
    vecs, _ = embed_images(blobs, enc, 4, 0, 64_000_000, draft=False)
    np.testing.assert_array_equal(vecs, np.concatenate([enc.forward(want[:4]),
                                                        enc.forward(want[4:])]))


def _jpeg(w, h, mode="RGB", exif_orientation=None):
    yy, xx = np.mgrid[0:h, 0:w]
    a = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], -1).astype(np.uint8)
    im = Image.fromarray(a).convert(mode)
    buf = io.BytesIO()
    exif = Image.Exif()
    if exif_orientation:
        exif[0x0112] = exif_orientation
    im.save(buf, "JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.parametrize("mode,orientation", [("RGB", None), ("CMYK", None), ("L", None),
                                              ("RGB", 6)])
def test_jpeg_draft_keeps_the_shortest_side_at_least_the_resize_size(mode, orientation):
    blob = _jpeg(1000, 600, mode, orientation)
    full = decode_rgb(blob)
    drafted = decode_rgb(blob, min_side=224)
    assert drafted.mode == "RGB" and min(drafted.size) >= 224
    assert drafted.size == ((500, 300) if orientation is None else (300, 500))
    assert full.size == ((1000, 600) if orientation is None else (600, 1000))
    assert full.tobytes() == to_rgb(decode(blob)).tobytes()
    small = full.resize(drafted.size, Image.Resampling.BICUBIC, reducing_gap=None)
    diff = np.abs(np.asarray(small, np.int16) - np.asarray(drafted, np.int16))
    assert diff.mean() < 3  # same picture, only the reduction filter differs
    assert decode_rgb(_jpeg(400, 300), min_side=224).size == (400, 300)  # < 2x: full size


def test_random_init_is_the_same_in_every_build():
    a = build_image_encoder.__wrapped__("ViT-B-32", None, "cpu")
    b = build_image_encoder.__wrapped__("ViT-B-32", None, "cpu")
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    import torch

    np.testing.assert_array_equal(a.forward(torch.from_numpy(x)), b.forward(torch.from_numpy(x)))


def _png(seed):
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_shard_embeddings_spaces_multi_image_mean_and_quarantine():
    enc = build_image_encoder("ViT-B-32", None, "cpu")
    txt = build_text_encoder("all-MiniLM-L6-v2", "cpu")
    conv = [{"from": "human", "value": "<image>\nq"}, {"from": "gpt", "value": "a"}]
    samples = [Sample("one", conv, [_png(1)], ["png"]),
               Sample("two", conv, [_png(1), _png(2)], ["png", "png"]),
               Sample("bad", conv, [_png(3), b"\x89PNG broken"], ["png", "png"]),
               Sample("text", [{"from": "human", "value": "What is 2+2?"},
                               {"from": "gpt", "value": "4"}])]
    emb = embed_shard(samples, enc, txt, batch_size=2)
    assert emb.image_keys == ["one", "two"] and emb.text_keys == ["text"]
    assert emb.image.dtype == np.float16 and emb.image.shape == (2, 512)
    assert emb.text.shape == (1, 384)
    assert [(q.key, q.reason) for q in emb.quarantined] == [("bad", "corrupt_image")]
    v1, _ = embed_images([_png(1), _png(2)], enc, 2, 0, 10**8)
    mean = v1.mean(0) / np.linalg.norm(v1.mean(0))
    np.testing.assert_allclose(emb.image[1].astype(np.float32), mean, atol=2e-3)


def test_target_fraction_is_met_on_unique_samples_when_60_percent_are_exact_copies():
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((40, 64))
    unique = centers[rng.integers(0, 40, 1000)] + 0.3 * rng.standard_normal((1000, 64))
    copies = unique[rng.integers(0, 1000, 1500)]  # 1500 of 2500 samples are exact copies
    x = np.concatenate([unique, copies]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    is_unique = np.arange(2500) < 1000
    clus = spherical_kmeans(x, ClusterConfig(k=40, niter=10))
    res = semdedup_space(x, clus.assign, clus.distance, is_unique,
                         SemDedupConfig(epsilon=None, target_fraction=0.10))
    removed = res.duplicate[is_unique].mean()
    assert abs(removed - 0.10) <= 0.005, removed
    assert not res.duplicate[~is_unique].any() and np.isnan(res.scores[~is_unique]).all()
    assert res.n_unique == 1000
    # without resolving exact copies first, the same ε would remove far more than 10%
    naive = semdedup_space(x, clus.assign, clus.distance, np.ones(2500, bool),
                           SemDedupConfig(epsilon=res.epsilon))
    assert naive.duplicate.mean() > 0.5
