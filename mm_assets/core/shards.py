"""Canonical WebDataset shards: write and read :class:`~mm_assets.core.records.Sample` objects.

Layout per sample: ``{key}.json`` (conversations, source, metadata, image file names) and one
member per image, ``{key}.{i}.{ext}``. Tar headers carry a fixed mtime and owner, so the same
samples give byte-identical shards.
"""

from __future__ import annotations

import contextlib
import json
import tarfile
from collections.abc import Iterable, Iterator
from typing import IO

import webdataset as wds

from mm_assets.core import layout
from mm_assets.core.records import Sample


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


KEY_RULES = ("first_dot", "last_dot")


def split_member(base: str, key_rule: str = "first_dot") -> tuple[str, str]:
    """``(key, extension)`` of a member's base name. ``first_dot`` is the webdataset
    convention (``img.v2.png`` -> ``img``, ``v2.png``); ``last_dot`` keeps dots in keys
    (``img.v2``, ``png``; a ``.gz`` suffix stays with its extension: ``a.txt.gz`` -> ``a``,
    ``txt.gz``)."""
    if key_rule == "first_dot":
        stem, _, ext = base.partition(".")
        return stem, ext
    stem, _, ext = base.rpartition(".")
    if ext == "gz" and "." in stem:
        stem, _, inner = stem.rpartition(".")
        ext = f"{inner}.gz"
    return (stem, ext) if stem else (base, "")


def _group_members(tf: tarfile.TarFile, key_rule: str = "first_dot"
                   ) -> Iterator[tuple[str, dict[str, bytes]]]:
    for key, parts, _ in _group_spans(tf, key_rule):
        yield key, parts


def _group_spans(tf: tarfile.TarFile, key_rule: str = "first_dot"
                 ) -> Iterator[tuple[str, dict[str, bytes], tuple[int, int] | None]]:
    plain = getattr(tf.fileobj, "comptype", "tar") == "tar"  # offsets are file offsets
    current, parts, start, end = None, {}, 0, 0
    for m in tf:
        if not m.isfile():
            continue
        folder, _, base = m.name.rpartition("/")
        stem, ext = split_member(base, key_rule)
        key = f"{folder}/{stem}" if folder else stem
        if key != current:
            if current is not None:  # before reading on: a truncated next member keeps this one
                yield current, parts, ((start, end) if plain else None)
                parts = {}
            start = m.offset  # its header (or the PAX / GNU long-name header before it)
        current = key
        parts[ext] = tf.extractfile(m).read()
        end = m.offset_data + -(-m.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
    _check_end_block(tf)  # before the last sample: it may have lost members to the cut
    if current is not None:
        yield current, parts, ((start, end) if plain else None)


def _check_end_block(tf: tarfile.TarFile) -> None:
    """Raise ``tarfile.ReadError`` when a streamed archive ended without its end-of-archive
    zero block. ``tarfile`` stops silently when a file is cut exactly at a member boundary (or
    inside the next header): the stream then ends where the last member ended, so the samples
    after the cut would vanish without an error (found by a tryout of pool shards)."""
    pos = getattr(tf.fileobj, "pos", None)  # stream mode: bytes consumed (uncompressed)
    if pos is not None and pos - tf.offset < tarfile.BLOCKSIZE:
        raise tarfile.ReadError(f"archive ends at byte {pos} without its end-of-archive block: "
                                "truncated at a member boundary (the samples after it are lost)")


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


def iter_tar_groups(f: IO[bytes], key_rule: str = "first_dot"
                    ) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Group members of any WebDataset tar by key (for ingesting foreign shards); consecutive
    members with one key form a sample, keys per :func:`split_member`.

    Raises:
        tarfile.TarError: on a truncated or corrupt archive (after yielding what came before;
            an archive cut at a member boundary too, before its last sample).
    """
    with tarfile.open(fileobj=f, mode="r|*") as tf:
        yield from _group_members(tf, key_rule)


def iter_tar_spans(f: IO[bytes], key_rule: str = "first_dot"
                   ) -> Iterator[tuple[str, dict[str, bytes], tuple[int, int] | None]]:
    """:func:`iter_tar_groups` plus each sample's byte span in the file: ``(start, end)``,
    start = offset of its first member's header (or of the PAX / GNU long-name header before
    it), end = end of its last member's data padded to 512 bytes; ``f`` read from byte 0.
    ``bytes[start:end]`` + two zero blocks is a tar of that sample alone (:func:`read_tar_span`).
    ``None`` for a compressed archive (offsets would be in the decompressed stream).

    Raises:
        tarfile.TarError: as :func:`iter_tar_groups`.
    """
    with tarfile.open(fileobj=f, mode="r|*") as tf:
        yield from _group_spans(tf, key_rule)


def read_tar_span(data: bytes, key_rule: str = "first_dot") -> list[tuple[str, dict[str, bytes]]]:
    """The samples of ``data``, a byte span of an uncompressed tar (:func:`iter_tar_spans`).

    Raises:
        tarfile.TarError: the bytes are not whole tar members.
    """
    import io

    return list(iter_tar_groups(io.BytesIO(data + bytes(2 * tarfile.BLOCKSIZE)), key_rule))


def _member_bytes(name: str, size: int) -> int:
    """Bytes one tar member takes: header + data padded to 512, plus a PAX header for names
    that do not fit the 100-byte ustar field (an upper bound)."""
    n = 512 + -(-size // 512) * 512
    raw = name.encode()
    if len(raw) > 99 or not name.isascii():
        n += 512 + -(-(len(raw) + 32) // 512) * 512
    return n


def _tar_file_bytes(members: int) -> int:
    """File size of a tar whose members take ``members`` bytes: two zero end blocks, padded to
    tarfile's 10,240-byte record."""
    return -(-(members + 1024) // 10240) * 10240


class ShardSink:
    """Stream samples into ``{prefix}/{i:05d}.tar`` shards, each closed (and atomically
    committed through :meth:`Store.open_write`) when it holds ``max_samples`` samples or when
    the next sample would push its file past ``max_bytes`` (a single larger sample gets a
    shard of its own). Memory: one sample at a time.

    Use as a context manager; on an exception the open shard is discarded, nothing partial is
    committed. ``paths`` lists the shards written.
    """

    def __init__(self, store, prefix: str, max_samples: int | None = None,
                 max_bytes: int | None = None):
        if not (max_samples or max_bytes):
            raise ValueError("ShardSink needs max_samples or max_bytes")
        self.store, self.prefix = store, prefix
        self.max_samples, self.max_bytes = max_samples, max_bytes
        self.paths: list[str] = []
        self._stack: contextlib.ExitStack | None = None
        self._writer = None
        self._n = self._bytes = 0

    def _open(self) -> None:
        rel = layout.numbered_tar(self.prefix, len(self.paths))
        self._stack = contextlib.ExitStack()
        f = self._stack.enter_context(self.store.open_write(rel))
        self._writer = wds.TarWriter(f, mtime=0, user="mm", group="mm", encoder=False)
        self._rel, self._n, self._bytes = rel, 0, 0

    def _close(self) -> None:
        self._writer.close()
        self._stack.close()
        self.paths.append(self._rel)
        self._stack = self._writer = None

    def add(self, s: Sample | dict) -> None:
        """Add a :class:`Sample`, or a ready WebDataset sample dict (``__key__`` + members,
        e.g. an interleaved document from :func:`~mm_assets.core.interleaved.doc.to_wds`)."""
        obj = s if isinstance(s, dict) else sample_to_wds(s)
        size = sum(_member_bytes(f"{obj['__key__']}.{k}", len(v)) for k, v in obj.items()
                   if not k.startswith("__"))
        if self._writer is not None and (
                (self.max_samples and self._n >= self.max_samples)
                or (self.max_bytes and _tar_file_bytes(self._bytes + size) > self.max_bytes)):
            self._close()
        if self._writer is None:
            self._open()
        self._writer.write(obj)
        self._n, self._bytes = self._n + 1, self._bytes + size

    def __enter__(self) -> ShardSink:
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None:
            if self._writer is not None:  # close the tar now, not at garbage collection
                with contextlib.suppress(Exception):  # (into the file about to be discarded)
                    self._writer.close()
                self._writer = None
            if self._stack is not None:
                self._stack.__exit__(*exc)  # discards the open shard
            return
        if self._writer is None and not self.paths:
            self._open()  # an empty mixture still gets one (empty) shard
        if self._writer is not None:
            self._close()


def write_shards(store, prefix: str, samples: Iterable[Sample], max_samples: int | None,
                 max_bytes: int | None = None) -> list[str]:
    """Stream samples into ``{prefix}/{i:05d}.tar`` (see :class:`ShardSink`), then remove
    stale shards of an earlier, larger output. Returns the shard paths written."""
    with ShardSink(store, prefix, max_samples, max_bytes) as sink:
        for s in samples:
            sink.add(s)
    for name in store.ls(prefix, ".tar"):
        if layout.entry(prefix, name) not in sink.paths:
            store.rm(layout.entry(prefix, name))
    return sink.paths
