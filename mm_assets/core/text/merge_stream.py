"""Merging over the whole corpus with bounded memory: groups streamed, members spilled to disk.

A merge group is the set of kept image samples sharing one ordered pixel-hash list (see
:mod:`.merge`). The corpus is read in shard order once to count each group's kept members, and
once more to emit: a sample outside every multi-member group passes through at once; a group
member is spilled to a local spool file until its group's last member arrives, then the group is
read back, merged with :func:`~mm_assets.core.text.merge.merge_group` and emitted at that point
(exactly where the in-memory version emitted it, so outputs are the same, in the same order).

Only the member that has the smallest key seen so far in its group is spilled with its image
bytes (``merge_group`` keeps the images of the smallest key); the others are spilled with empty
image placeholders (their count kept), so the spool holds texts plus about one image set per
group when keys arrive in order (about ln m of a group's m members when they arrive in random
order).

Memory model (N samples, G image groups, O members waiting for their group at the peak):
about 24 B per kept image sample for the counting pass (16-byte group id + Arrow offset),
about 120 B per waiting member (its spool offset and length in a dict of lists; measured in
``bench/bench_scale.py``), and one shard's hash table; never an image of a waiting member.
Disk: the spool, deleted at the end.
"""

from __future__ import annotations

import pickle
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

import polars as pl

from mm_assets.core.records import Sample
from mm_assets.core.text.merge import MergeConfig, merge_group

Tables = Callable[[str], pl.DataFrame]  # shard -> kept image samples: key, pixel_list_hash


def group_sizes(shards: list[str], kept_images: Tables) -> pl.DataFrame:
    """``group (Binary, 16 B), size (UInt32)`` for every group with ≥ 2 kept members."""
    ids = [kept_images(s).select(pl.col("pixel_list_hash").str.decode("hex").alias("group"))
           for s in shards]
    if not ids:
        return pl.DataFrame(schema={"group": pl.Binary, "size": pl.UInt32})
    return (pl.concat(ids).group_by("group").agg(pl.len().cast(pl.UInt32).alias("size"))
            .filter(pl.col("size") > 1))


class _Spool:
    """Append-only local file of pickled samples (this process's own data, read back once)."""

    def __init__(self, folder: str | None):
        self.f = tempfile.TemporaryFile(dir=folder)  # noqa: SIM115 (closed by close())
        self.bytes = 0

    def put(self, s: Sample) -> tuple[int, int]:
        blob = pickle.dumps(s, protocol=pickle.HIGHEST_PROTOCOL)
        self.f.seek(0, 2)
        at = self.f.tell()
        self.f.write(blob)
        self.bytes += len(blob)
        return at, len(blob)

    def get(self, at: int, n: int) -> Sample:
        self.f.seek(at)
        return pickle.loads(self.f.read(n))

    def close(self) -> None:
        self.f.close()


def _emit(members: list[Sample], cfg: MergeConfig, stats: Counter) -> list[Sample]:
    parts = merge_group(members, cfg)
    stats["groups"] += 1
    stats["merged_members"] += len(members) - 1
    stats["parts"] += len(parts)
    return parts


def merged_stream(shards: list[str], kept_images: Tables,
                  samples: Callable[[str], Iterable[Sample]], cfg: MergeConfig,
                  stats: Counter, spool_dir: str | None = None) -> Iterator[Sample]:
    """Curated samples with each multi-member group merged (see module doc).

    Args:
        shards: shard ids in corpus order.
        kept_images: per shard, its kept image samples (``key``, ``pixel_list_hash``).
        samples: per shard, its curated samples in shard order (streamed).
        cfg: merge settings.
        stats: receives ``in``, ``passthrough``, ``groups``, ``merged_members``, ``parts``,
            ``incomplete_groups`` (groups some of whose counted members never arrived: merged
            at the end from those that did) and ``spool_bytes``.
        spool_dir: folder for the spool file (default: the system temp folder).

    Yields:
        Samples in the order described in the module doc.
    """
    sizes = group_sizes(shards, kept_images)
    spool = _Spool(spool_dir)
    waiting: dict[bytes, list] = {}  # group -> [min key, [(offset, length), ...]]
    try:
        for shard in shards:
            mine = (kept_images(shard).select(
                "key", pl.col("pixel_list_hash").str.decode("hex").alias("group"))
                .join(sizes, on="group", how="inner"))
            group_of = dict(zip(mine["key"].to_list(),
                                zip(mine["group"].to_list(), mine["size"].to_list(),
                                    strict=True), strict=True))
            for s in samples(shard):
                stats["in"] += 1
                hit = group_of.get(s.key)
                if hit is None:
                    stats["passthrough"] += 1
                    yield s
                    continue
                g, size = hit
                entry = waiting.setdefault(g, [None, []])
                if len(entry[1]) + 1 == size:
                    del waiting[g]
                    yield from _emit([spool.get(*e) for e in entry[1]] + [s], cfg, stats)
                    continue
                if entry[0] is None or s.key < entry[0]:
                    entry[0] = s.key
                else:  # never the group's first: merge_group only counts its images
                    s = Sample(s.key, s.conversations, [b""] * len(s.images), s.image_exts,
                               s.source, s.metadata)
                entry[1].append(spool.put(s))
        for g in sorted(waiting):
            stats["incomplete_groups"] += 1
            yield from _emit([spool.get(*e) for e in waiting.pop(g)[1]], cfg, stats)
    finally:
        stats["spool_bytes"] = spool.bytes
        spool.close()
