"""Storage root on any fsspec filesystem (local folder, ``s3://bucket/prefix``, ...).

Every write is atomic. On a local (or other POSIX-like) filesystem the data goes to a temporary
sibling name and is then moved into place. On an object store (S3, GCS, Azure) an object only
becomes visible when its upload completes, so the data is streamed straight to the final key
and the upload is aborted when the writer fails: a killed run leaves either the previous object
or the complete new one, never half a file, and no temporary objects to clean up.

Credentials and endpoints live in ``storage_options`` only; they are never part of a path, a URL
or ``repr(store)``, so they cannot reach logs or metadata.
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

from mm_assets.core.schemas import Schema, check_schema

OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl"})


def _protocols(fs: fsspec.AbstractFileSystem) -> tuple[str, ...]:
    proto = fs.protocol
    return tuple(proto) if isinstance(proto, (tuple, list)) else (proto,)


class Store:
    """A storage root addressed by relative, ``/``-separated paths.

    Args:
        root: fsspec URL or local path of the root folder (created on first write).
        storage_options: extra keyword arguments for the filesystem (for s3fs: ``key``,
            ``secret``, ``client_kwargs={"endpoint_url": ...}``). Never logged. On object
            stores directory listings are not cached (``use_listings_cache=False``) unless
            set here, so files written by other processes are seen at once.
    """

    def __init__(self, root: str, storage_options: dict[str, Any] | None = None):
        self.root = root.rstrip("/")
        opts = dict(storage_options or {})
        scheme = self.root.split("://", 1)[0] if "://" in self.root else "file"
        if scheme in OBJECT_STORES:
            opts.setdefault("use_listings_cache", False)
        self.fs, base = fsspec.core.url_to_fs(self.root, **opts)
        self.base = base.rstrip("/")
        self.protocols = _protocols(self.fs)
        self.is_local = "file" in self.protocols or "local" in self.protocols
        self.is_object_store = bool(OBJECT_STORES & set(self.protocols))

    def sub(self, rel: str) -> Store:
        """A Store rooted at ``rel`` under this root, on the same filesystem and options."""
        s = object.__new__(Store)
        s.root, s.fs, s.base = self.url(rel), self.fs, self.path(rel)
        s.protocols, s.is_local = self.protocols, self.is_local
        s.is_object_store = self.is_object_store
        return s

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    def path(self, rel: str) -> str:
        """Filesystem path (no protocol) of ``rel`` under the root."""
        return f"{self.base}/{rel.lstrip('/')}" if rel else self.base

    def url(self, rel: str) -> str:
        """Full URL of ``rel`` (what users see in metadata)."""
        return f"{self.root}/{rel.lstrip('/')}" if rel else self.root

    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.path(rel))

    def ls(self, rel: str, suffix: str = "") -> list[str]:
        """Sorted names (not paths) of entries directly under ``rel`` ending in ``suffix``.

        Works the same on object stores, where "folders" are key prefixes.
        """
        p = self.path(rel)
        try:
            entries = self.fs.ls(p, detail=False)
        except FileNotFoundError:
            return []
        names = {e.rstrip("/").rsplit("/", 1)[-1] for e in entries}
        return sorted(n for n in names if n.endswith(suffix) and ".tmp-" not in n)

    def rm(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.rm(self.path(rel), recursive=True)

    @contextlib.contextmanager
    def open_write(self, rel: str) -> Iterator[IO[bytes]]:
        """Open ``rel`` for binary writing; the file appears only when the block exits cleanly.

        Raises:
            Whatever the block raises; the partial data is discarded first.
        """
        final = self.path(rel)
        if self.is_object_store:
            with self._object_write(final) as f:
                yield f
            return
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        tmp = f"{final}.tmp-{uuid.uuid4().hex[:12]}"
        try:
            with self.fs.open(tmp, "wb") as f:
                yield f
            self.fs.mv(tmp, final)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(tmp)
            raise

    @contextlib.contextmanager
    def _object_write(self, final: str) -> Iterator[IO[bytes]]:
        """Stream to the final key; on failure abort the (multipart) upload, commit nothing."""
        f = self.fs.open(final, "wb")
        try:
            yield f
        except BaseException:
            with contextlib.suppress(Exception):
                f.discard()
            f.closed = True  # nothing may be flushed later (close() would upload the buffer)
            raise
        f.close()

    def write_bytes(self, rel: str, data: bytes) -> None:
        with self.open_write(rel) as f:
            f.write(data)

    def read_bytes(self, rel: str) -> bytes:
        with self.fs.open(self.path(rel), "rb") as f:
            return f.read()

    def open_read(self, rel: str) -> IO[bytes]:
        """A streaming binary reader (ranged reads on object stores)."""
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

    def write_table(self, rel: str, df: pl.DataFrame, schema: Schema) -> None:
        """:meth:`write_parquet` of a hand-off table that must be exactly ``schema``
        (columns, order, dtypes; :mod:`mm_assets.core.schemas`).

        Raises:
            SchemaError: names this file's URL and the column; nothing is written.
        """
        check_schema(schema, df.schema, self.url(rel), exact=True)
        self.write_parquet(rel, df)

    def read_table(self, rel: str, schema: Schema) -> pl.DataFrame:
        """:meth:`read_parquet` of a hand-off table holding every column of ``schema`` with
        its dtype (extra columns are allowed and returned).

        Raises:
            SchemaError: names this file's URL and the column.
        """
        df = self.read_parquet(rel)
        check_schema(schema, df.schema, self.url(rel))
        return df

    def parquet_rows(self, rel: str) -> int:
        """Row count of a Parquet table from its footer (no column is read; any fsspec root)."""
        import pyarrow.parquet as pq

        with self.fs.open(self.path(rel), "rb") as f:
            return pq.ParquetFile(f).metadata.num_rows

    def write_npy(self, rel: str, arr: np.ndarray) -> None:
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        self.write_bytes(rel, buf.getvalue())

    def read_npy(self, rel: str) -> np.ndarray:
        """Load an array; memory-mapped when the root is local, read whole otherwise."""
        if self.is_local:
            return np.load(self.path(rel), mmap_mode="r", allow_pickle=False)
        return np.load(io.BytesIO(self.read_bytes(rel)), allow_pickle=False)

    def enable_webdataset(self) -> None:
        """Let ``webdataset.WebDataset`` open this root's URLs (``store.url(rel)``).

        webdataset has no ``s3://`` opener of its own; this registers one that streams through
        this store's fsspec filesystem (same endpoint and credentials). No-op on local roots.
        """
        if self.is_local:
            return
        import webdataset as wds

        fs = self.fs

        def _open(url: str, mode: str = "rb", bufsize: int = 8192, **kw: Any) -> IO[bytes]:
            return fs.open(url, mode)

        for proto in self.protocols:
            wds.gopen_schemes[proto] = _open


def set_default_options(protocol: str, options: dict[str, Any]) -> None:
    """Make ``options`` the defaults of every ``protocol://`` filesystem of this process.

    Inputs and image folders are opened by URL (``fsspec.open("s3://...")``) far from any
    :class:`Store`; registering the endpoint and credentials once (fsspec's documented global
    ``fsspec.config.conf``) makes those URLs reach the same S3-compatible server.
    """
    if options:
        fsspec.config.conf.setdefault(protocol, {}).update(options)
