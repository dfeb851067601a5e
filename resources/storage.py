"""Storage resource: one fsspec root shared by assets, sensors and the CLI."""

from __future__ import annotations

import os

from dagster import ConfigurableResource

from mm_assets.core.storage import Store

DEFAULT_ROOT = ".mm_assets/root"


def resolve_root(root: str = "") -> str:
    """``root`` if set, else ``$MM_ASSETS_ROOT``, else ``./.mm_assets/root`` (absolute)."""
    root = root or os.environ.get("MM_ASSETS_ROOT", "")
    if not root:
        root = DEFAULT_ROOT
    return root if "://" in root else os.path.abspath(root)


class StorageResource(ConfigurableResource):
    """Where every asset reads and writes.

    Attributes:
        root: fsspec URL (``/data/mm``, ``s3://bucket/prefix``); empty means ``$MM_ASSETS_ROOT``
            or ``./.mm_assets/root``, resolved when the resource is used, not at import.
        endpoint_url: S3-compatible endpoint (MinIO, moto); credentials come from the usual
            AWS environment variables or instance roles and are never logged.
    """

    root: str = ""
    endpoint_url: str | None = None

    def store(self) -> Store:
        root = resolve_root(self.root)
        opts = {}
        endpoint = self.endpoint_url or os.environ.get("MM_ASSETS_S3_ENDPOINT")
        if root.startswith("s3://") and endpoint:
            opts = {"client_kwargs": {"endpoint_url": endpoint}}
        return Store(root, opts)
