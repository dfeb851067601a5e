"""Canonical WebDataset shards: write and read :class:`~.records.Sample` objects.

Layout per sample: ``{key}.json`` (conversations, source, metadata, image file names) and one
member per image, ``{key}.{i}.{ext}``. Tar headers carry a fixed mtime and owner, so the same
samples give byte-identical shards.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterable, Iterator
from typing import IO

import webdataset as wds

from .records import Sample


def sample_to_wds(s: Sample) -> dict:
    names = [f"{i}.{ext}" for i, ext in enumerate(s.image_exts)]
    meta = {"key": s.key, "conversations": s.conversations, "source": s.source,
            "metadata": s.metadata, "images": names}
    obj = {"__key__": s.key, "json": json.dumps(meta, ensure_ascii=False, sort_keys=True).encode()}
    for name, data in zip(names, s.images, strict=True):
        obj[name] = data
    return obj


def write_samples(f: IO[bytes], samples: Iterable[Sample]) -> int:
    """Write samples as a WebDataset tar to an open binary file; returns the sample count."""
    n = 0
    writer = wds.TarWriter(f, mtime=0, user="mm", group="mm", encoder=False)
    for s in samples:
        writer.write(sample_to_wds(s))
        n += 1
    writer.close()
    return n


def _group_members(tf: tarfile.TarFile) -> Iterator[tuple[str, dict[str, bytes]]]:
    current, parts = None, {}
    for m in tf:
        if not m.isfile():
            continue
        folder, _, base = m.name.rpartition("/")
        stem, _, ext = base.partition(".")
        key = f"{folder}/{stem}" if folder else stem
        if key != current and current is not None:
            yield current, parts  # before reading on: a truncated next member keeps this one
            parts = {}
        current = key
        parts[ext] = tf.extractfile(m).read()
    if current is not None:
        yield current, parts


def read_samples(f: IO[bytes]) -> Iterator[Sample]:
    """Read canonical samples from an open tar stream (one pass, bounded memory)."""
    with tarfile.open(fileobj=f, mode="r|*") as tf:
        for key, parts in _group_members(tf):
            meta = json.loads(parts["json"])
            names = meta.get("images", [])
            yield Sample(key=meta.get("key", key), conversations=meta["conversations"],
                         images=[parts[n] for n in names],
                         image_exts=[n.split(".", 1)[1] for n in names],
                         source=meta.get("source", ""), metadata=meta.get("metadata", {}))


def iter_tar_groups(f: IO[bytes]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Group members of any WebDataset tar by key (for ingesting foreign shards).

    Raises:
        tarfile.TarError: on a truncated or corrupt archive (after yielding what came before).
    """
    with tarfile.open(fileobj=f, mode="r|*") as tf:
        yield from _group_members(tf)
