"""Storage resource: one fsspec root shared by assets, sensors and the CLI."""

from __future__ import annotations

import os

from dagster import ConfigurableResource, EnvVar

from mm_assets.core.cache import set_cache_dir
from mm_assets.core.storage import Store, set_default_options

DEFAULT_ROOT = ".mm_assets/root"


def _value(v: str | EnvVar | None) -> str | None:
    """A config value; an ``EnvVar`` is resolved here when used outside a run."""
    return v.get_value() if isinstance(v, EnvVar) else v


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
        endpoint_url: S3-compatible endpoint (MinIO, moto); empty means
            ``$MM_ASSETS_S3_ENDPOINT``, else AWS itself.
        aws_access_key_id: S3 key id; set it with ``EnvVar("...")`` so only the variable's name
            is stored in run config. Empty means the usual AWS chain (``AWS_ACCESS_KEY_ID``,
            profiles, instance roles).
        aws_secret_access_key: S3 secret, same rules. Credentials and the endpoint are passed
            to s3fs only; they never appear in paths, URLs, logs or metadata.
        cache_dir: local model cache of this process (dequantised LMs, ONNX exports); empty
            means ``$MM_ASSETS_CACHE``, else ``~/.cache/mm-assets``. Set for the whole process
            when :meth:`store` is called (every asset calls it first).
    """

    root: str = ""
    endpoint_url: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    cache_dir: str = ""

    def s3_options(self) -> dict:
        """s3fs keyword arguments (endpoint, credentials); empty when nothing is configured."""
        opts: dict = {}
        endpoint = _value(self.endpoint_url) or os.environ.get("MM_ASSETS_S3_ENDPOINT")
        if endpoint:
            opts["client_kwargs"] = {"endpoint_url": endpoint}
        key, secret = _value(self.aws_access_key_id), _value(self.aws_secret_access_key)
        if key and secret:
            opts.update(key=key, secret=secret)
        return opts

    def store(self) -> Store:
        """The root as a :class:`Store`.

        Also makes the endpoint and credentials the process-wide defaults for ``s3://`` URLs,
        so inputs, image folders and watched prefixes on the same server open by URL.
        """
        root = resolve_root(_value(self.root) or "")
        set_cache_dir(_value(self.cache_dir) or os.environ.get("MM_ASSETS_CACHE"))
        opts = self.s3_options()
        set_default_options("s3", opts)
        return Store(root, opts if root.startswith(("s3://", "s3a://")) else {})
