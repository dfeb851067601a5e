"""Writing a mining recipe's output: LLaVA samples, the selection table and the manifest.

Each mined pool image becomes one canonical sample (:class:`~mm_assets.core.records.Sample`)::

    key:            {pool}-{stem}-{wds_key}  (characters outside [A-Za-z0-9_-] become '-')
    conversations:  [{"from": "human", "value": "<image>\\n" + recipe.prompt},
                     {"from": "gpt", "value": caption}]
    images:         [the pool image's bytes, unchanged]   image_exts: [its extension]
    source:         pool:{pool}
    metadata:       {pool, pool_shard, pool_key, cluster, sim, mining_recipe}

so a caption-only pool yields "describe the image" instruction data; the mixture source
``{mined: RECIPE}`` reads these shards. Shards ``mined/{recipe}/{i:05d}.tar`` are written in
pool-shard order; a pool shard is read only where its taken samples lie: the byte spans
``pool_assign`` recorded (range reads, merged when closer than :data:`SPAN_GAP`, at most
:data:`SPAN_BATCH` bytes in memory unless one sample is larger), or, for a table without
spans, from the start up to the last taken sample (counted in the manifest's ``pool_reads``
with a note naming the pool_assign partitions to re-materialize); ``selection.parquet``
lists the taken rows in that order and ``manifest.json`` gives per cluster wanted /
candidates / taken / rejected per reason / not_needed / shortfall.
"""

from __future__ import annotations

import re
import tarfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import polars as pl

from mm_assets.core import layout, schemas
from mm_assets.core.dedup.hashing import bytes_hash
from mm_assets.core.mine.recipe import MiningRecipe
from mm_assets.core.mine.select import MiningError, Selection
from mm_assets.core.records import ASSISTANT, HUMAN, IMAGE_TOKEN, Sample
from mm_assets.core.shards import iter_tar_groups, read_tar_span, write_shards
from mm_assets.core.storage import Store

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")  # as pool_assign reads them (first present)
_BAD = re.compile(r"[^A-Za-z0-9_-]")
SPAN_GAP = 1 << 16  # bytes: selected samples closer than this are fetched in one range read
SPAN_BATCH = 32 << 20  # bytes fetched per cat_ranges call (and per merged range) at most


def out_key(pool: str, stem: str, wds_key: str) -> str:
    """The mined sample's key: ``{pool}-{stem}-{wds_key}`` made WebDataset-safe."""
    return _BAD.sub("-", f"{pool}-{stem}-{wds_key}")


def conversation(prompt: str, caption: str) -> list[dict[str, str]]:
    """The two turns of a mined sample (see the module doc)."""
    return [{"from": HUMAN, "value": f"{IMAGE_TOKEN}\n{prompt}"},
            {"from": ASSISTANT, "value": caption}]


def _shard_url(store: Store, pool: str, stem: str) -> str:
    from mm_assets.core.mine.pool import shard_url

    return shard_url(store, pool, stem)


@dataclass(slots=True)
class PoolReads:
    """How ``mined`` read the pool shards (bytes: what was requested; a scan counts the bytes
    the tar reader consumed).

    Attributes:
        span_shards / span_samples: shards / samples read by their recorded byte spans.
        scanned_shards: shards read from the start (tables without spans, written before
            they were recorded, or a compressed shard), up to their last selected sample.
        requests: range requests made (adjacent spans merged); bytes_read: bytes read.
    """

    span_shards: int = 0
    span_samples: int = 0
    scanned_shards: int = 0
    requests: int = 0
    bytes_read: int = 0
    rescan: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("span_shards", "span_samples", "scanned_shards",
                                             "requests", "bytes_read")}
        if self.rescan:
            out["note"] = (f"{len(self.rescan)} pool shard(s) have no byte spans in their "
                           "pool_assign table and were scanned from the start: re-materialize "
                           f"pool_assign[{', '.join(self.rescan[:5])}"
                           f"{', ...' if len(self.rescan) > 5 else ''}] to read only the "
                           "selected samples")
        return out


class _Counting:
    """A read-only file wrapper counting the bytes read through it."""

    def __init__(self, f, reads: PoolReads):
        self.f, self.reads = f, reads

    def read(self, n: int = -1) -> bytes:
        b = self.f.read(n)
        self.reads.bytes_read += len(b)
        return b


def _sample(r: MiningRecipe, url: str, row: dict, wds_key: str, parts: dict) -> Sample:
    pool, stem = row["pool"], row["shard"]
    ext = next((e for e in IMAGE_EXTS if e in parts), None)
    if wds_key != row["wds_key"] or ext is None or bytes_hash(parts[ext]) != row["bytes_hash"]:
        raise MiningError(f"pool shard {url}: sample {row['wds_key']!r} changed since "
                          f"pool_assign (image bytes differ): re-materialize "
                          f"pool_assign[{pool}__{stem}]")
    return Sample(row["out_key"], conversation(r.prompt, row["caption"]), [parts[ext]], [ext],
                  f"pool:{pool}", {"pool": pool, "pool_shard": stem, "pool_key": row["key"],
                                   "cluster": row["cluster"], "sim": round(row["sim"], 6),
                                   "mining_recipe": r.name})


def _ranges(rows: list[dict]) -> list[tuple[int, int, list[dict]]]:
    """Spans merged when closer than :data:`SPAN_GAP` (a merged range ≤ :data:`SPAN_BATCH`
    bytes unless one sample is larger): ``(start, end, rows)``."""
    out: list[tuple[int, int, list[dict]]] = []
    for row in sorted(rows, key=lambda x: x["span_start"]):
        a, b = row["span_start"], row["span_end"]
        if out and a - out[-1][1] <= SPAN_GAP and b - out[-1][0] <= SPAN_BATCH:
            out[-1] = (out[-1][0], max(out[-1][1], b), out[-1][2] + [row])
        else:
            out.append((a, b, [row]))
    return out


def _span_samples(r: MiningRecipe, url: str, rows: list[dict], reads: PoolReads
                  ) -> Iterator[Sample]:
    """The selected samples of one shard by range reads of their byte spans (fsspec
    ``cat_ranges``: concurrent on object stores), :data:`SPAN_BATCH` bytes at a time."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    ranges = _ranges(rows)
    size = fs.size(path)
    if max(e for _, e, _ in ranges) > size:
        raise MiningError(f"pool shard {url} is {size} bytes, shorter than the recorded span "
                          f"of a selected sample: it changed since pool_assign; re-materialize "
                          f"pool_assign[{rows[0]['pool']}__{rows[0]['shard']}]")
    reads.span_shards += 1
    batch: list[tuple[int, int, list[dict]]] = []

    def fetch() -> Iterator[Sample]:
        blobs = fs.cat_ranges([path] * len(batch), [a for a, _, _ in batch],
                              [b for _, b, _ in batch], on_error="return")
        reads.requests += len(batch)
        for (a, _, part), blob in zip(batch, blobs, strict=True):
            if not isinstance(blob, bytes):
                raise MiningError(f"pool shard {url}: range read failed ({blob!r})")
            reads.bytes_read += len(blob)
            for row in part:
                try:
                    groups = read_tar_span(blob[row["span_start"] - a:row["span_end"] - a])
                except (tarfile.TarError, EOFError) as e:
                    groups = [(f"<{type(e).__name__}>", {})]
                if len(groups) != 1:
                    groups = [("<not one sample>", {})]
                reads.span_samples += 1
                yield _sample(r, url, row, *groups[0])

    held = 0
    for rng in ranges:
        if batch and held + rng[1] - rng[0] > SPAN_BATCH:
            yield from fetch()
            batch, held = [], 0
        batch.append(rng)
        held += rng[1] - rng[0]
    if batch:
        yield from fetch()


def _scan_samples(r: MiningRecipe, url: str, rows: list[dict], reads: PoolReads
                  ) -> Iterator[Sample]:
    """The selected samples of one shard by reading it from the start up to the last one."""
    import fsspec

    want = {row["wds_key"]: row for row in rows}
    pool, stem = rows[0]["pool"], rows[0]["shard"]
    reads.scanned_shards += 1
    with fsspec.open(url, "rb") as f:
        groups = iter_tar_groups(_Counting(f, reads))
        while want:  # stop at the last wanted sample: a damaged tail is not read
            try:
                wds_key, parts = next(groups)
            except StopIteration:
                break
            except (tarfile.ReadError, EOFError, OSError) as e:
                raise MiningError(f"pool shard {url} cannot be read past its first samples "
                                  f"({type(e).__name__}: {e}); {len(want)} selected "
                                  f"sample(s) not reached, e.g. {sorted(want)[:3]}: "
                                  f"re-materialize pool_assign[{pool}__{stem}]") from e
            row = want.pop(wds_key, None)
            if row is not None:
                yield _sample(r, url, row, wds_key, parts)
    if want:
        raise MiningError(f"pool shard {url}: {len(want)} selected sample(s) missing, e.g. "
                          f"{sorted(want)[:3]}: re-materialize pool_assign[{pool}__{stem}]")


def mined_samples(store: Store, r: MiningRecipe, rows: pl.DataFrame,
                  reads: PoolReads | None = None) -> Iterator[Sample]:
    """The taken rows as samples, pool shard by pool shard (rows must be in that order, with
    ``span_start`` / ``span_end``). A shard whose rows all have spans is read by range
    requests of those spans only; otherwise (tables from before spans were recorded) from the
    start up to its last selected sample, noted in ``reads.rescan``.

    Raises:
        MiningError: a taken sample is missing from its pool shard, its span holds another
            sample, or its image bytes changed since ``pool_assign`` (bytes hash differs):
            re-materialize pool_assign.
    """
    reads = PoolReads() if reads is None else reads
    for (pool, stem), part in rows.group_by("pool", "shard", maintain_order=True):
        url = _shard_url(store, pool, stem)
        dicts = list(part.iter_rows(named=True))
        if part["span_start"].null_count() or part["span_end"].null_count():
            reads.rescan.append(f"{pool}__{stem}")
            yield from _scan_samples(r, url, dicts, reads)
        else:
            yield from _span_samples(r, url, dicts, reads)


def selection_table(sel: Selection) -> pl.DataFrame:
    """The taken rows in output order (pool, shard, row), schema MINED_SELECTION.

    Raises:
        MiningError: two taken samples map to the same output key.
    """
    rows = sel.rows
    if rows.height == 0:
        return pl.DataFrame(schema={**schemas.MINED_SELECTION, "span_start": pl.Int64,
                                    "span_end": pl.Int64})
    rows = rows.sort("pool", "shard", "row")  # keys from the sorted rows, not the unsorted
    rows = rows.with_columns(out_key=pl.Series(
        [out_key(p, s, w) for p, s, w in zip(rows["pool"], rows["shard"], rows["wds_key"],
                                              strict=True)], dtype=pl.Utf8))
    if rows["out_key"].n_unique() != rows.height:
        raise MiningError("two selected pool samples map to one output key "
                          f"(e.g. {rows.filter(rows['out_key'].is_duplicated())['key'][:2]})")
    return rows.select([*schemas.MINED_SELECTION, "span_start", "span_end"]).cast(
        {**schemas.MINED_SELECTION, "span_start": pl.Int64, "span_end": pl.Int64})


def write_mined(store: Store, r: MiningRecipe, sel: Selection) -> tuple[list[str], dict]:
    """Write shards, ``selection.parquet`` and ``manifest.json`` of recipe ``r``.

    Returns:
        ``(shard paths, manifest)``.

    Raises:
        MiningError: see :func:`mined_samples` and :func:`selection_table`.
    """
    table, reads = selection_table(sel), PoolReads()
    paths = write_shards(store, layout.mined_dir(r.name), mined_samples(store, r, table, reads),
                         r.shard_size)
    store.write_table(layout.mined_selection(r.name),
                      table.select(list(schemas.MINED_SELECTION)), schemas.MINED_SELECTION)
    manifest = {**manifest_of(r, sel, paths), "pool_reads": reads.as_dict()}
    store.write_json(layout.mined_manifest(r.name), manifest)
    return paths, manifest


def manifest_of(r: MiningRecipe, sel: Selection, paths: list[str]) -> dict:
    """The manifest: recipe settings, per-cluster tallies, totals, shards."""
    t = sel.tallies
    return {
        "recipe": r.name, "pools": list(r.pools), "seed": r.seed, "mode": r.mode,
        "min_sim": r.min_sim, "min_margin": r.min_margin,
        "dedup": {"exact": r.dedup.exact, "phash_radius": r.dedup.phash_radius,
                  "cosine": r.dedup.cosine, "cosine_clusters": r.dedup.cosine_clusters},
        "conversation": conversation(r.prompt, "{caption}"),
        "clusters": {str(c): v.as_dict() for c, v in sorted(t.items())},
        "totals": {"wanted": sum(v.wanted for v in t.values()),
                   "candidates": sum(v.candidates for v in t.values()),
                   "taken": sum(v.taken for v in t.values()),
                   "not_needed": sum(v.not_needed for v in t.values()),
                   "shortfall": sum(v.shortfall for v in t.values()),
                   "rejected": dict(sorted(sum((v.rejected for v in t.values()),
                                               start=Counter()).items()))},
        "rounds": sel.rounds, "peak_kept_rows": sel.peak_kept, "shards": paths,
        "reconciles": all(v.reconciles() for v in t.values()) and sel.counts.reconciles()}
