"""Storage root on any fsspec filesystem (local folder, ``s3://bucket/prefix``, ...).

Every write is atomic: data goes to a temporary sibling name and is then moved into place,
so a killed run leaves either the previous file or the complete new one, never half a file.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import Iterator
from typing import IO, Any

import fsspec
import numpy as np
import polars as pl


class Store:
    """A storage root addressed by relative, ``/``-separated paths.

    Args:
        root: fsspec URL or local path of the root folder (created on first write).
        storage_options: extra keyword arguments for the filesystem (e.g. ``endpoint_url``
            via ``client_kwargs`` for s3fs). Never logged.
    """

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None):
        self.root = root.rstrip("/")
        self.fs, base = fsspec.core.url_to_fs(self.root, **(storage_options or {}))
        self.base = base.rstrip("/")
        self.is_local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple)
                                   else (self.fs.protocol,))

    def path(self, rel: str) -> str:
        """Filesystem path (no protocol) of ``rel`` under the root."""
        return f"{self.base}/{rel.lstrip('/')}" if rel else self.base

    def url(self, rel: str) -> str:
        """Full URL of ``rel`` (what users see in metadata)."""
        return f"{self.root}/{rel.lstrip('/')}" if rel else self.root

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.path(rel))

    def ls(self, rel: str, suffix: str = "") -> list[str]:
        """Sorted names (not paths) of entries directly under ``rel`` ending in ``suffix``."""
        p = self.path(rel)
        if not self.fs.exists(p):
            return []
        names = [e.rstrip("/").rsplit("/", 1)[-1] for e in self.fs.ls(p, detail=False)]
        return sorted(n for n in names if n.endswith(suffix) and ".tmp-" not in n)

    def rm(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.rm(self.path(rel), recursive=True)

    @contextlib.contextmanager
    def open_write(self, rel: str) -> Iterator[IO[bytes]]:
        """Open ``rel`` for binary writing; the file appears only when the block exits cleanly.

        Raises:
            Whatever the block raises; the temporary file is removed first.
        """
        final = self.path(rel)
        parent = final.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{final}.tmp-{uuid.uuid4().hex[:12]}"
        try:
            with self.fs.open(tmp, "wb") as f:
                yield f
            self.fs.mv(tmp, final)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(tmp)
            raise

    def write_bytes(self, rel: str, data: bytes) -> None:
        with self.open_write(rel) as f:
            f.write(data)

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open(self.path(rel), "rb") as f:
            return f.read()

    def open_read(self, rel: str) -> IO[bytes]:
        return self.fs.open(self.path(rel), "rb")

    def write_json(self, rel: str, obj: Any) -> None:
        self.write_bytes(rel, json.dumps(obj, indent=2, sort_keys=True, default=str).encode())

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def write_parquet(self, rel: str, df: pl.DataFrame) -> None:
        """Write a Parquet table atomically (zstd; no timestamps, so bytes are reproducible)."""
        buf = io.BytesIO()
        df.write_parquet(buf, compression="zstd", statistics=False)
        self.write_bytes(rel, buf.getvalue())

    def read_parquet(self, rel: str) -> pl.DataFrame:
        return pl.read_parquet(io.BytesIO(self.read_bytes(rel)))

    def write_npy(self, rel: str, arr: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        self.write_bytes(rel, buf.getvalue())

    def read_npy(self, rel: str) -> np.ndarray:
        """Load an array; memory-mapped when the root is local, read whole otherwise."""
        if self.is_local:
            return np.load(self.path(rel), mmap_mode="r", allow_pickle=False)
        return np.load(io.BytesIO(self.read_bytes(rel)), allow_pickle=False)
