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
    """Yield ``(key, images (PIL, in order), turns)`` of a built mixture, in its order.

    ``turns`` is a conversation sample's LLaVA turns (``{"from": "human"|"gpt", "value": str}``)
    or, for an interleaved document (a recipe's ``interleaved`` source), its segments in order:
    ``{"text": str}`` or ``{"image": i}`` with ``i`` the index into ``images`` (a URL-only
    image, which mixtures never carry, would be ``{"image": None, "url": str}``).

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
        if "conversations" not in meta and "texts" in meta:  # an interleaved document
            yield sample["__key__"], *_document(sample)
            continue
        images = [Image.open(io.BytesIO(sample[name])) for name in meta["images"]]
        yield sample["__key__"], images, meta["conversations"]


def _document(sample: dict) -> tuple[list[Image.Image], list[dict]]:
    """Images and ordered segments of one stored interleaved document (see iter_mixture)."""
    from mm_assets.core.interleaved.doc import ImageSeg, from_wds

    images, segments = [], []
    for seg in from_wds(sample).segments:
        if not isinstance(seg, ImageSeg):
            segments.append({"text": seg.text})
        elif seg.data is None:
            segments.append({"image": None, "url": seg.url})
        else:
            segments.append({"image": len(images)})
            images.append(Image.open(io.BytesIO(seg.data)))
    return images, segments


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
