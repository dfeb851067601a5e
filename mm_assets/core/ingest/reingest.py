"""Forced re-ingest of an input (``mm-assets ingest --force``): replace its shards.

An input ingested with the wrong image folder (or, for WebDataset tars, key rule) is recorded
in the ingest state; a corrected ingest of the same file is skipped as already ingested. With
``force``, :func:`~mm_assets.core.ingest.plan.ingest_inputs` calls :func:`replan_input`, which,
under the root's ingest lock:

1. plans the input again into staged manifests (``inputs/_reingest/{shard}.jsonl``), reusing
   the input's earlier shard ids in order, then new ids if it needs more shards; a failure here
   removes the staged files and leaves the root as it was;
2. withdraws the commit records that depend on the earlier shards (:func:`withdraw_commits`):
   each earlier shard's record of every per-shard asset downstream of the manifests, and every
   record of the other downstream assets (global stages, per-recipe mixtures), so
   ``mm-assets run --missing`` recomputes exactly what the new manifests change;
3. moves the staged manifests over the live ones and deletes the manifests of earlier shards
   the new plan no longer needs (``retired``; the caller removes their partitions);
4. drops the input's earlier state entries (every fingerprint of the same URL: the file may
   have been corrected in place too); the caller records the new entry and writes the state.

Withdrawing comes before replacing: an interruption after step 2 leaves earlier manifests whose
downstream records are gone (recomputed by ``run --missing``, never served stale), and running
the same ``ingest --force`` again completes the replacement.

Memory and cost: one input streamed once (as a first ingest), each staged manifest read and
written once more, one listing of each withdrawn asset's commit folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mm_assets.core import layout
from mm_assets.core.commits import read_commits, uncommit
from mm_assets.core.storage import Store


@dataclass(frozen=True, slots=True)
class Downstream:
    """The commit records a re-ingested shard invalidates.

    Attributes:
        shard_assets: assets partitioned by ingest shard (``raw_shards``, ``curated``, ...):
            their records of the re-ingested shards are withdrawn.
        other_assets: assets computed over many shards (global stages, per-recipe mixtures):
            every record of theirs is withdrawn.
    """

    shard_assets: tuple[str, ...]
    other_assets: tuple[str, ...] = ()


def url_of(fingerprint: str) -> str:
    """The input URL of an ingest-state fingerprint (``url|size|digest``)."""
    return fingerprint.rsplit("|", 2)[0]


def previous_entries(state: dict, url: str) -> dict[str, list[str]]:
    """Fingerprint -> shard ids of every earlier ingest of ``url`` in the ingest ``state``."""
    return {fp: list(sh) for fp, sh in state["ingested"].items() if url_of(fp) == url}


def withdraw_commits(store: Store, shards: list[str], downstream: Downstream) -> list[str]:
    """Remove the commit records that depend on ``shards``.

    Returns:
        The withdrawn records as ``asset[partition]`` strings, sorted.
    """
    out = []
    for asset in downstream.shard_assets:
        have = read_commits(store, asset)
        for shard in shards:
            if shard in have:
                uncommit(store, asset, shard)
                out.append(f"{asset}[{shard}]")
    for asset in downstream.other_assets:
        for part in read_commits(store, asset):
            uncommit(store, asset, part)
            out.append(f"{asset}[{part}]")
    return sorted(out)


def _clear_staging(store: Store) -> None:
    for name in store.ls(layout.REINGEST_STAGING, layout.MANIFEST_SUFFIX):
        store.rm(f"{layout.REINGEST_STAGING}/{name}")


def replan_input(store: Store, planner, plan: Callable[[], None], summary,
                 previous: dict[str, list[str]], downstream: Downstream) -> None:
    """Replace an input's earlier shards by a new plan of it (steps 1-4 of the module doc).

    Args:
        store: storage root (the caller holds its ingest lock).
        planner: the ingest planner (:class:`~mm_assets.core.ingest.plan._Planner`): its state
            and shard-id allocation.
        plan: plans the input through ``planner`` (fills ``summary.shards``).
        summary: the input's :class:`~mm_assets.core.ingest.plan.InputSummary`; gets
            ``replaced`` (earlier shards), ``retired`` and ``withdrawn``.
        previous: :func:`previous_entries` of the input.
        downstream: what to withdraw.

    Raises:
        Whatever planning raises (nothing live changed: staged manifests removed).
    """
    old = sorted({s for shards in previous.values() for s in shards})
    _clear_staging(store)  # left by an interrupted earlier --force (we hold the lock)
    planner.reuse, planner.staging = list(old), True
    try:
        plan()
    except BaseException:
        _clear_staging(store)
        raise
    finally:
        planner.reuse, planner.staging = [], False
    summary.replaced = old
    summary.retired = [s for s in old if s not in summary.shards]
    summary.withdrawn = withdraw_commits(store, old, downstream)
    for sid in summary.shards:
        store.write_bytes(layout.manifest(sid), store.read_bytes(layout.reingest_manifest(sid)))
        store.rm(layout.reingest_manifest(sid))
    for sid in summary.retired:
        if store.exists(layout.manifest(sid)):
            store.rm(layout.manifest(sid))
    for fp in previous:
        del planner.state["ingested"][fp]
