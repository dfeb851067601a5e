"""Materialize the graph in process, layer by layer, into a persistent Dagster instance.

Layers follow the asset graph: per-shard assets run once per shard, global assets once, then
curated per shard, merged and rephrased once, mixtures once per recipe, then the report. Each call is a real
Dagster run recorded in the instance (``$DAGSTER_HOME``), so the UI shows the materializations.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from dagster import DagsterInstance, materialize

from mm_assets.core import layout
from mm_assets.core.mix.registry import root_recipes
from mm_assets.definitions import ALL_ASSETS, default_resources
from mm_assets.interleaved_plan import DOC_ASSETS, known_doc_shards
from mm_assets.runner_plan import (  # noqa: F401 (re-exported: CLI and tests use them here)
    ALL,
    LAYERS,
    OPTIONAL,
    ORDER,
    RANGE_TAGS,
    REPORTS,
    NothingIngested,
    _batched,
    _batches,
    _label,
    _plan,
)
from resources.storage import StorageResource


def get_instance() -> DagsterInstance:
    """The persistent instance at ``$DAGSTER_HOME`` (default ``./.mm_assets/dagster_home``).
    A home that is new (missing or empty) gets a ``dagster.yaml`` that only turns telemetry
    off, so a first run prints no instance warnings; an existing home is left as it is."""
    default = "DAGSTER_HOME" not in os.environ
    home = Path(os.environ.setdefault("DAGSTER_HOME",
                                      str(Path(".mm_assets/dagster_home").resolve())))
    fresh = not home.exists() or not any(home.iterdir())
    home.mkdir(parents=True, exist_ok=True)
    if (default or fresh) and not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return DagsterInstance.get()


@dataclass
class RunSummary:
    """Per asset: summed metadata counts over its runs, and failures."""

    counts: dict[str, dict[str, float]] = field(default_factory=lambda: defaultdict(dict))
    failed: list[str] = field(default_factory=list)
    runs: int = 0
    finished: list[str] = field(default_factory=list)
    interrupted: str | None = None
    not_started: list[str] = field(default_factory=list)

    def stop_line(self) -> str:
        """What an interrupted run did: the step interrupted, what finished, what did not
        start (empty when not interrupted)."""
        if self.interrupted is None:
            return ""
        rest = ", ".join(self.not_started[:8]) + (" ..." if len(self.not_started) > 8 else "")
        return (f"interrupted during {self.interrupted}; finished {len(self.finished)} run(s)"
                + (f" (last {self.finished[-1]})" if self.finished else "")
                + f"; not started: {len(self.not_started)} run(s)" + (f" ({rest})" if rest else "")
                + "; `mm-assets run --missing` continues")

    def add(self, asset: str, meta: dict) -> None:
        for k, v in meta.items():
            val = getattr(v, "value", v)
            if k.startswith(("n_", "removed_", "quarantined_")) and isinstance(val, (int, float)):
                self.counts[asset][k] = self.counts[asset].get(k, 0) + val


def register_recipes(instance: DagsterInstance, storage: StorageResource,
                     names: list[str] | None = None) -> list[str]:
    """Add ``names`` (default: the root's own recipes) as ``recipes`` partitions; returns them.
    Shipped example recipes are registered only when named."""
    names = sorted(root_recipes(storage.store()) if names is None else names)
    have = set(instance.get_dynamic_partitions("recipes"))
    instance.add_dynamic_partitions("recipes", [n for n in names if n not in have])
    return names


def _root_cause(error) -> str:
    """The innermost error of a Dagster ``SerializableErrorInfo`` as ``Type: message``."""
    while error.cause is not None:
        error = error.cause
    return " ".join(error.message.split())[:500]


def _interrupted(result) -> bool:
    """The run failed because of SIGINT/SIGTERM (Dagster turns them into this error)."""
    return any(e.step_failure_data and e.step_failure_data.error
               and e.step_failure_data.error.cls_name == "DagsterExecutionInterruptedError"
               for e in result.get_step_failure_events())


@contextmanager
def _signals_interrupt() -> Iterator[Callable[[], bool]]:
    """SIGINT and SIGTERM raise ``KeyboardInterrupt`` between runs (inside a run Dagster's own
    handler interrupts the step); the previous handlers come back afterwards.

    Yields ``pending()``: True when a SIGINT/SIGTERM arrived since the last call. Dagster's
    ``capture_interrupts`` swallows a signal that lands after the step but before the run
    closes (it only sets a flag, then clears it), so the runner also watches the signals
    through ``signal.set_wakeup_fd`` and stops after such a run instead of starting the next.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    rfd, wfd = os.pipe()
    os.set_blocking(rfd, False)
    os.set_blocking(wfd, False)
    old_fd = signal.set_wakeup_fd(wfd, warn_on_full_buffer=False)

    def stop(signo, frame):
        raise KeyboardInterrupt(signal.Signals(signo).name)

    def pending() -> bool:
        got = b""
        while True:
            try:
                chunk = os.read(rfd, 512)
            except BlockingIOError:
                break
            if not chunk:
                break
            got += chunk
        return any(b in (signal.SIGINT, signal.SIGTERM) for b in got)

    for sig in old:
        signal.signal(sig, stop)
    try:
        yield pending
    finally:
        signal.set_wakeup_fd(old_fd)
        os.close(rfd)
        os.close(wfd)
        for sig, handler in old.items():
            signal.signal(sig, handler)


def run_graph(instance: DagsterInstance, resources: dict | None = None,
              select: list[str] | None = None, shards: list[str] | None = None,
              recipes: list[str] | None = None, run_config: dict | None = None,
              specs: list[str] | None = None, minings: list[str] | None = None,
              progress=None, missing_only: bool = False, log_level: str = "CRITICAL",
              batch: int = 1, doc_shards: list[str] | None = None,
              pool_shards: list[str] | None = None) -> RunSummary:
    """Materialize ``select`` (default: every asset) over ``shards`` (default: all known).

    Args:
        instance: Dagster instance that records the runs.
        resources: resource overrides (default: :func:`default_resources`).
        select: asset names; unknown names raise ``ValueError``.
        shards: shard partition keys (default: every registered shard).
        recipes: recipe partition keys (default: the root's own recipes,
            ``{root}/recipes/*.yaml``; shipped examples only when named here).
        specs: synthetic-data spec partition keys (default: the root's own specs,
            ``{root}/synthetic/*.yaml``; shipped examples only when named here).
        minings: mining-recipe partition keys of ``mined`` (default: the root's own,
            ``{root}/mining/*.yaml``; shipped examples only when named here).
        pool_shards: ``pool_assign`` partition keys ``{pool}__{stem}`` (default: every shard
            of every registered pool).
        doc_shards: ``doc_shards`` partition keys of the interleaved-document assets (default:
            every doc shard registered and ingested into the root; with none, the document
            assets are left out of a default run, and naming one raises NothingIngested).
        run_config: per-asset config, ``{"ops": {asset: {"config": {...}}}}``.
        progress: callable ``(step: str) -> None`` for progress display.
        missing_only: skip partitions whose selected assets are all materialized already
            (resuming a killed run recomputes only unfinished shards).
        batch: shards per run in the per-shard layers (consecutive shards, one Dagster
            partition-range run, as a BackfillPolicy batch; each per-shard asset then spreads
            the run's shards over its worker processes, ``workers``: one per core by default).
            1 = one run per shard. The SemDeDup range partitions (``semdedup_range``, planned
            by ``semdedup_plan`` in the layer before) are batched the same way, in plan order.
            Each shard keeps its own counts, commit record and checks; a
            shard that raises fails its run (shards committed before it stay committed, and
            ``missing_only`` recomputes the rest).
        log_level: Dagster console log level; the default keeps step tracebacks out of the
            console (each failure is returned in ``RunSummary.failed`` as one line, and the
            full logs stay in the instance).

    Returns:
        The summary. SIGINT/SIGTERM stop the whole call: the run in flight is interrupted (its
        step fails), no further run starts, and ``summary.interrupted``/``finished``/
        ``not_started`` say what happened (``missing_only`` continues later).

    Raises:
        NothingIngested: no shard was ever ingested and a per-shard or global asset is selected.
        ValueError: an unknown asset name.
    """
    resources = resources or default_resources()
    explicit, select = bool(select), select or ALL
    unknown = sorted(set(select) - set(ALL))
    if unknown:
        raise ValueError(f"unknown asset(s) {unknown}; known: {ALL}")
    known = instance.get_dynamic_partitions("shards")
    shards = shards if shards is not None else known
    store = resources["storage"].store()
    doc_shards = doc_shards if doc_shards is not None else known_doc_shards(instance, store)
    if not doc_shards and set(select) & set(DOC_ASSETS):  # document layers: only with docs
        if explicit:
            raise NothingIngested("no doc shards in this root and instance: run `mm-assets "
                                  "interleaved ingest` first")
        select = [a for a in select if a not in DOC_ASSETS]
    if doc_shards and not known and not explicit:  # a root of documents only
        select = [a for a in select if a in DOC_ASSETS]
    if set(select) - {"mixtures", *OPTIONAL}:
        if not known:
            raise NothingIngested("nothing ingested yet: run `mm-assets ingest --input FILE` "
                                  "first (no shard partitions in this instance)")
        if not layout.shard_ids(store, layout.INPUTS, layout.MANIFEST_SUFFIX):
            raise NothingIngested(  # e.g. a mistyped --root: its runs would all fail
                f"nothing ingested into {store.url('')} (no shard manifest under "
                f"{layout.INPUTS}/; this Dagster instance knows "
                f"{len(known)} shard(s) of another root): "
                "check --root / MM_ASSETS_ROOT, or run `mm-assets ingest` into it")
    if "mixtures" in select:  # named recipes become partitions too (the UI then shows them)
        recipes = register_recipes(instance, resources["storage"], recipes)
    if {"synthetic", "synthetic_checked"} & set(select):  # likewise for synthetic-data specs
        from mm_assets.assets.synthetic import register_specs

        specs = register_specs(instance, resources["storage"], specs)
    if "mined" in select:  # and mining recipes
        from mm_assets.assets.mining import register_mining

        minings = register_mining(instance, resources["storage"], minings)
    if "pool_assign" in select:  # and the shards of registered pools
        from mm_assets.assets.pool import register_pool_shards

        register_pool_shards(instance, resources["storage"])
    summary = RunSummary()
    ops = (run_config or {}).get("ops", {})
    with _signals_interrupt() as pending:
        try:
            _run_layers(instance, resources, ops, summary, progress,
                        _batched(_plan(select, shards, recipes, store, missing_only, specs,
                                       minings, doc_shards, pool_shards), known, batch),
                        log_level, pending)
        except KeyboardInterrupt:
            summary.interrupted = summary.interrupted or "between runs"
    return summary


# partitions that fail alone: a failed spec, pool shard, mining recipe or mixture recipe does
# not stop the later layers (what reads it fails with its own message; documents, other
# recipes and the report do not need it)
FAIL_ALONE = {"synthetic", "synthetic_checked", "pool_assign", "mined", "mixtures"}


def _run_layers(instance, resources, ops, summary: RunSummary, progress, steps,
                log_level: str, pending: Callable[[], bool] = lambda: False) -> None:
    """Materialize each layer's partitions in order; stop after a layer with a failed
    partition (unless its assets are in :data:`FAIL_ALONE`) or at an interrupt, recording
    what finished and what did not start. ``pending()`` says whether a
    signal arrived during a run that Dagster did not turn into an interruption."""
    todo = [_label(chosen, key) for chosen, keys in steps
            for key in (["planned"] if callable(keys) else keys)]
    for chosen, keys in steps:
        failed_before = len(summary.failed)
        if callable(keys):  # partitions known when the layer starts (SemDeDup ranges, docs)
            at = todo.index(_label(chosen, "planned"))
            keys = keys()
            todo[at:at + 1] = [_label(chosen, k) for k in keys]
        cfg = {"ops": {n: ops[n] for n in chosen if n in ops},
               "loggers": {"console": {"config": {"log_level": log_level}}}}
        for key in keys:
            label = todo.pop(0)
            summary.not_started = todo
            try:  # a signal from here on belongs to this run (its progress line is out)
                if progress:
                    progress(label)
                where = ({"tags": dict(zip(RANGE_TAGS, (key[0], key[-1]), strict=True))}
                         if isinstance(key, tuple) else {"partition_key": key})
                result = materialize(ALL_ASSETS, selection=chosen, instance=instance,
                                     resources=resources, run_config=cfg,
                                     raise_on_error=False, **where)
            except KeyboardInterrupt:
                summary.interrupted = label
                raise
            summary.runs += 1
            if _interrupted(result):
                summary.interrupted = f"{label} (run {result.run_id})"
                return
            late_signal = pending()
            if not result.success:
                why = [_root_cause(e.step_failure_data.error)
                       for e in result.get_step_failure_events() if e.step_failure_data.error]
                summary.failed.append(f"{'+'.join(chosen)}[{key or 'global'}] run "
                                      f"{result.run_id}" + (f": {why[0]}" if why else ""))
                if late_signal:
                    summary.interrupted = f"{label}, just as it failed"
                    return
                continue
            summary.finished.append(label)
            for n in chosen:
                for mat in result.asset_materializations_for_node(n):
                    summary.add(n, mat.metadata)
            if late_signal:  # the signal landed as the run was closing: stop before the next
                summary.interrupted = f"{label}, just as it finished"
                return
        if len(summary.failed) > failed_before and not set(chosen) <= FAIL_ALONE:
            summary.not_started = todo  # downstream layers would only fail on missing inputs
            return
    summary.not_started = [] if summary.interrupted is None else summary.not_started
