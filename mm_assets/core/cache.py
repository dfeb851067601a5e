"""The process's local model cache (dequantised LMs, ONNX exports): one setting, no imports.

Core reads no environment variable: the edges set the folder (``StorageResource.store()``
from its ``cache_dir`` or ``$MM_ASSETS_CACHE``); unset, it is ``~/.cache/mm-assets``.
"""

from __future__ import annotations

from pathlib import Path

_CACHE_DIR: list[Path] = []


def set_cache_dir(path: str | Path | None) -> None:
    """Use ``path`` as this process's model cache; ``None`` or empty: the default."""
    _CACHE_DIR[:] = [Path(path)] if path else []


def default_cache_dir() -> Path:
    """The folder set with :func:`set_cache_dir`, else ``~/.cache/mm-assets``."""
    return _CACHE_DIR[0] if _CACHE_DIR else Path.home() / ".cache" / "mm-assets"
