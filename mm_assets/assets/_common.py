"""Small helpers shared by asset bodies: shard I/O, quarantine tables, plots, metadata."""

import time
from collections.abc import Iterable

import polars as pl
from dagster import MaterializeResult, MetadataValue

from mm_assets.core.records import QUARANTINE_SCHEMA, Quarantined, Sample
from mm_assets.core.shards import read_samples, write_samples
from mm_assets.core.storage import Store
from mm_assets.viz.plots import bar_plot, png_markdown  # noqa: F401  (re-exported for assets)


def shard_rel(asset: str, shard: str) -> str:
    return f"{asset}/{shard}.tar"


def recorded_hashes_rel(shard: str) -> str:
    """Image hashes raw_shards computed while validating (read by image_hashes)."""
    return f"raw_shards/{shard}.hashes.parquet"


def read_shard(store: Store, asset: str, shard: str) -> list[Sample]:
    """All samples of one shard of ``asset``.

    Raises:
        FileNotFoundError: the upstream partition is not materialized (message names it).
    """
    rel = shard_rel(asset, shard)
    if not store.exists(rel):
        raise FileNotFoundError(f"{asset} shard {shard} missing at {store.url(rel)}: "
                                f"materialize {asset} for this shard first")
    with store.open_read(rel) as f:
        return list(read_samples(f))


def write_shard(store: Store, rel: str, samples: Iterable[Sample]) -> int:
    with store.open_write(rel) as f:
        return write_samples(f, samples)


def write_quarantine(store: Store, stage: str, shard: str, rows: list[Quarantined]) -> str:
    """Write the quarantine table of one stage and shard (written even when empty)."""
    rel = f"quarantine/{stage}/{shard}.parquet"
    store.write_parquet(rel, pl.DataFrame([q.as_row() for q in rows],
                                          schema={k: pl.Utf8 for k in QUARANTINE_SCHEMA}))
    return rel


def upstream_shards(store: Store, asset: str, suffix: str) -> list[str]:
    """Shard ids with a materialized output of ``asset`` (file or folder names)."""
    return [n[: -len(suffix)] if suffix else n for n in store.ls(asset, suffix)]


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = round(time.perf_counter() - self.t0, 3)


def per_shard(context, asset: str, fn, *args, workers: int = 1) -> MaterializeResult:
    """Run ``fn(shard, *args) -> (StageCounts, metadata)`` for every partition of the run.

    A run may cover one shard or a batch of shards (BackfillPolicy); with ``workers`` ≠ 1 the
    shards run in parallel worker processes (0 = one per core, see
    :func:`mm_assets.core.parallel.map_shards`: ``fn`` must be a module-level function and
    ``args`` picklable). Counts are summed in shard order, the counts check covers all of
    them, and per-shard metadata is kept when the run has one shard.
    """
    from mm_assets.checks import counts_result
    from mm_assets.core.parallel import map_shards, resolve_workers
    from mm_assets.core.records import StageCounts

    keys = list(context.partition_keys)
    total, meta = StageCounts(), {}
    with Timer() as t:
        for counts, shard_meta in map_shards(fn, keys, args, workers):
            total.n_in += counts.n_in
            total.n_out += counts.n_out
            total.removed.update(counts.removed)
            total.quarantined.update(counts.quarantined)
            meta = shard_meta if len(keys) == 1 else {}
    meta = {**meta, **total.as_metadata(), "seconds": t.seconds, "shards": len(keys),
            "workers": resolve_workers(workers, len(keys)), **corpus_totals(context, asset)}
    context.log.info(f"{asset}: {total.as_metadata()}")
    return MaterializeResult(metadata=meta, check_results=[counts_result(total)])


def corpus_totals(context, asset: str) -> dict:
    """``corpus_*`` totals of a per-shard asset over every committed shard, for the asset page
    (which shows only the latest materialization); empty without commit records. See
    :func:`mm_assets.core.report.counts.corpus_metadata`."""
    from mm_assets.core.report.counts import corpus_metadata

    storage = getattr(getattr(context, "resources", None), "storage", None)
    return corpus_metadata(storage.store(), asset) if storage is not None else {}


def md_table(df) -> MetadataValue:
    """A small polars DataFrame as a markdown table."""
    if df.height == 0:
        return MetadataValue.md("(empty)")
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    rows = "".join("| " + " | ".join(str(v) for v in r) + " |\n" for r in df.iter_rows())
    return MetadataValue.md(head + rows)


def read_sharded(store: Store, asset: str):
    """Iterate samples of every ``{asset}/*.tar`` shard in order."""
    for name in store.ls(asset, ".tar"):
        with store.open_read(f"{asset}/{name}") as f:
            yield from read_samples(f)
