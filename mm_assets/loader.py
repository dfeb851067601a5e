"""Reading a mixture back: samples as (images, conversations) with webdataset, and the index as
Parquet for Hugging Face ``datasets`` (``datasets.load_dataset("parquet", data_files=...)``)."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator

import polars as pl
import webdataset as wds
from PIL import Image

from mm_assets.core import layout
from mm_assets.core.storage import Store


def iter_mixture(store: Store, recipe: str) -> Iterator[tuple[str, list[Image.Image], list[dict]]]:
    """Yield ``(key, images (PIL, in prompt order), conversations)`` of a built mixture.

    Raises:
        FileNotFoundError: the mixture was not materialized.
    """
    manifest = store.read_json(layout.mixture_manifest(recipe))
    if store.is_local:
        urls = [store.path(p) for p in manifest["shards"]]
    else:
        store.enable_webdataset()
        urls = [store.url(p) for p in manifest["shards"]]
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        meta = json.loads(sample["json"])
        images = [Image.open(io.BytesIO(sample[name])) for name in meta["images"]]
        yield sample["__key__"], images, meta["conversations"]


def export_index(store: Store, recipe: str, rel: str | None = None) -> str:
    """Write the mixture's per-sample index (manifest ``samples``: one row per drawn sample)
    as Parquet, atomically.

    Args:
        store: the storage root holding the mixture.
        recipe: the mixture's recipe name.
        rel: where to write. None: ``{root}/mixtures/{recipe}/index.parquet``
            (:func:`~mm_assets.core.layout.mixture_index`); a relative path: under the storage
            root; an absolute local path or a URL (``s3://bucket/key``): used as given (on a
            URL's filesystem with its default options).

    Returns:
        The URL (or absolute path) of the written file.

    Raises:
        FileNotFoundError: the mixture was not materialized.
    """
    manifest = store.read_json(layout.mixture_manifest(recipe))
    df = pl.DataFrame(manifest["samples"])
    rel = rel or layout.mixture_index(recipe)
    if "://" in rel or os.path.isabs(rel):
        folder, name = rel.rstrip("/").rsplit("/", 1)
        Store(folder or "/").write_parquet(name, df)
        return rel
    store.write_parquet(rel, df)
    return store.url(rel)
