"""Small helpers shared by asset bodies: shard I/O, quarantine tables, plots, metadata."""

import time
from collections.abc import Iterable

import polars as pl
from dagster import MaterializeResult, MetadataValue

from mm_assets.core import layout, schemas
from mm_assets.core.records import Quarantined, Sample, StageCounts
from mm_assets.core.shards import read_samples, write_samples
from mm_assets.core.storage import Store
from mm_assets.viz.plots import bar_plot, png_markdown  # noqa: F401  (re-exported for assets)


def shard_rel(asset: str, shard: str) -> str:
    return layout.shard_tar(asset, shard)


def recorded_hashes_rel(shard: str) -> str:
    """Image hashes raw_shards computed while validating (read by image_hashes)."""
    return layout.recorded_hashes(shard)


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
    rel = layout.quarantine(stage, shard)
    store.write_table(rel, pl.DataFrame([q.as_row() for q in rows],
                                        schema=schemas.QUARANTINE), schemas.QUARANTINE)
    return rel


def upstream_shards(store: Store, asset: str) -> list[str]:
    """Shard ids of ``asset`` that are committed (have a commit record, written last and only
    when the shard's checks pass): a global stage never reads a half-written or miscounted
    shard.

    Raises:
        mm_assets.core.commits.UncommittedError: no shard of ``asset`` is committed, or a shard
            raw_shards committed has no committed ``asset`` (a global stage would otherwise
            describe part of the corpus; e.g. after an interrupted run: ``run --missing``).
    """
    from mm_assets.core.commits import UncommittedError, committed, read_commits

    have = committed(store, asset)
    if asset != "raw_shards":
        missing = sorted(set(read_commits(store, "raw_shards")) - set(have))
        if missing:
            raise UncommittedError(
                f"{asset} is not committed for {len(missing)} shard(s) raw_shards committed "
                f"({', '.join(missing[:5])}{', …' if len(missing) > 5 else ''}): materialize "
                f"{asset} for them first (`mm-assets run --missing`)")
    return have


class Timer:
    def __enter__(self):
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = round(time.perf_counter() - self.t0, 3)


def per_shard(context, asset: str, fn, *args, workers: int = 1,
              store: Store | None = None, upstream: str | None = None,
              inputs: dict[str, str] | None = None) -> MaterializeResult:
    """Run ``fn(shard, *args) -> (StageCounts, metadata)`` for every partition of the run.

    A run may cover one shard or a batch of shards (BackfillPolicy); with ``workers`` ≠ 1 the
    shards run in parallel worker processes (0 = one per core, see
    :func:`mm_assets.core.parallel.map_shards`: ``fn`` must be a module-level function and
    ``args`` picklable). Each shard's own counts and metadata go to its own materialization
    (``context.add_asset_metadata(..., partition_key=shard)``; run-wide figures are prefixed
    ``run_``), each shard whose counts reconcile gets its commit record
    (:func:`mm_assets.core.commits.write_commit`, written last), and the blocking
    ``counts_reconcile`` check fails the run naming every shard that does not reconcile.
    ``store`` defaults to the first of ``args`` that is a :class:`Store`. With ``upstream``
    (e.g. ``"raw_shards"``) the blocking ``input_matches_upstream`` check compares each shard's
    ``n_in`` with the ``n_out`` that upstream committed for it.

    ``fn`` may return a third item, ``{unit: StageCounts}`` for a second unit the stage
    accounts for (the images of interleaved documents): stored in the commit record
    (``extra_counts``), and each unit gets the blocking ``{unit}_reconcile`` check (declare it
    with :func:`mm_assets.checks.extra_counts_spec`): its counts reconcile and, when
    ``upstream`` counted that unit, ``n_in`` equals upstream's committed ``n_out``. A shard
    failing either is not committed. ``inputs`` (versions of the global inputs the run used,
    e.g. ``{"index_fingerprint": fp}``) go into each commit record, so a shard built against
    an older version can be told stale.
    """
    from mm_assets.checks import counts_result, extra_counts_result, upstream_result
    from mm_assets.core.commits import extra_counts_of, read_commit, uncommit, write_commit
    from mm_assets.core.parallel import map_shards, resolve_workers

    store = store or next((a for a in args if isinstance(a, Store)), None)
    keys = list(context.partition_keys)
    if store is not None:
        for key in keys:  # a partition being rewritten is not committed until it finishes
            uncommit(store, asset, key)
    per: dict[str, StageCounts] = {}
    expected: dict[str, int | None] = {}
    extras: dict[str, dict[str, StageCounts]] = {}  # unit -> partition -> counts
    extra_expected: dict[str, dict[str, int]] = {}
    with Timer() as t:
        for key, (counts, shard_meta, *more) in zip(keys, map_shards(fn, keys, args, workers),
                                                     strict=True):
            per[key] = counts
            extra = more[0] if more else {}
            for unit, c in extra.items():
                extras.setdefault(unit, {})[key] = c
            if upstream and store is not None:
                rec = read_commit(store, upstream, key)
                expected[key] = rec["counts"]["n_out"] if rec else None
                for unit in extra:  # compared only where upstream counted the unit
                    up = extra_counts_of(rec, unit) if rec else None
                    if up is not None:
                        extra_expected.setdefault(unit, {})[key] = up.n_out
            extra_ok = all(c.reconciles()
                           and extra_expected.get(u, {}).get(key, c.n_in) == c.n_in
                           for u, c in extra.items())
            if (store is not None and counts.reconciles() and extra_ok
                    and (not upstream or expected[key] == counts.n_in)):
                write_commit(store, asset, key, counts, extra=extra, inputs=inputs)
            own = {**shard_meta, **counts.as_metadata()}
            if len(keys) > 1 and hasattr(context, "add_asset_metadata"):
                context.add_asset_metadata(own, partition_key=key)
            elif len(keys) == 1:
                meta = own
    run_meta = {"run_seconds": t.seconds, "run_shards": len(keys),
                "run_workers": resolve_workers(workers, len(keys)),
                **{f"run_{f}": sum(getattr(c, f) for c in per.values())
                   for f in ("n_in", "n_out", "n_removed", "n_quarantined")}}
    meta = {**(meta if len(keys) == 1 else {}), **run_meta, **corpus_totals(context, asset)}
    bad = [k for k, c in per.items() if not c.reconciles()]
    context.log.info(f"{asset}: {len(keys)} shard(s), {len(bad)} not reconciling {bad[:10]}")
    checks = [counts_result(per)]
    if upstream and store is not None:
        checks.append(upstream_result(upstream, per, expected))
    checks += [extra_counts_result(unit, by_key, extra_expected.get(unit))
               for unit, by_key in sorted(extras.items())]
    return MaterializeResult(metadata=meta, check_results=checks)


def global_result(store: Store, asset: str, counts: StageCounts, outputs: list[str],
                  metadata: dict, checks: list | None = None, digests: bool = True,
                  partition: str | None = None,
                  inputs: dict[str, str] | None = None) -> MaterializeResult:
    """Result of a global asset: commit record (with the digests of ``outputs``, and the
    versions of the ``inputs`` it was built against) when the counts reconcile, counts in the
    metadata, and the blocking counts check."""
    from mm_assets.checks import counts_result
    from mm_assets.core.commits import GLOBAL, uncommit, write_commit

    part = partition or GLOBAL
    if counts.reconciles():
        write_commit(store, asset, part, counts, outputs, digests=digests, inputs=inputs)
    else:
        uncommit(store, asset, part)
    return MaterializeResult(metadata={**counts.as_metadata(), **metadata},
                             check_results=[counts_result({part: counts}), *(checks or [])])


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
    for name in store.ls(asset, layout.TAR):
        with store.open_read(layout.entry(asset, name)) as f:
            yield from read_samples(f)
