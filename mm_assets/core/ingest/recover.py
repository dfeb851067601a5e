"""Recovery from an interrupted ingest (Ctrl-C, ``kill -9``, a crash while planning).

:func:`~mm_assets.core.ingest.plan.ingest_inputs` writes an input's shard manifests first and
records them in the ingest state (``inputs/_state.json``) once the whole input is planned. An
ingest stopped in between leaves manifests the state does not record; before this module every
later ingest refused to overwrite them ("the ingest state is out of date").

The ingest now keeps a small journal in the state itself: before planning it writes
``open_from`` = the first shard id it may allocate (``next_shard``), and removes the key once
every input is recorded. So, under the root's ingest lock:

- a manifest with an id >= ``open_from`` that the state does not record was written by an ingest
  that did not finish: :func:`remove_leftovers` deletes it (the next ingest calls it first, and
  the interrupted one calls it on its way out when it can), and the next ingest allocates the
  same ids again: the result equals an uninterrupted ingest;
- an unrecorded manifest with no journal covering it (a state restored by hand, an ingest
  interrupted before this journal existed) is still never overwritten (:func:`check_free`
  fails before anything is written);
- a leftover that already has a ``raw_shards`` commit record is never deleted silently (error);
- a failed or interrupted ingest removes its own partial manifests and its journal on the way
  out (:func:`close_journal`), so only ``kill -9`` leaves work for the next ingest.

Memory and cost: one listing of ``inputs/`` and of ``raw_shards``' commit folder per ingest.
"""

from __future__ import annotations

from mm_assets.core import layout
from mm_assets.core.commits import read_commits
from mm_assets.core.storage import Store

OPEN = "open_from"  # ingest-state key: the first shard id an unfinished ingest could write


class IngestInterrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during ingest, after cleaning up (a ``KeyboardInterrupt``).

    Attributes:
        done: URLs of the inputs ingested and recorded before the interrupt (or skipped as
            already ingested).
        done_shards: their new shard ids.
        pending: URLs of the inputs not ingested (the one being planned first).
        removed: shard ids of the partial manifests removed on the way out.
    """

    def __init__(self, done: list[str], done_shards: list[str], pending: list[str],
                 removed: list[str]):
        super().__init__("ingest interrupted")
        self.done, self.done_shards = done, done_shards
        self.pending, self.removed = pending, removed

    def line(self) -> str:
        """One line: what was (not) ingested and what to do."""
        def names(urls):
            return ", ".join(u.rstrip("/").rsplit("/", 1)[-1] for u in urls)

        done = (f"{names(self.done)} ingested ({len(self.done_shards)} new shard(s))"
                if self.done else "nothing ingested")
        return (f"ingest interrupted: {done}; NOT ingested: {names(self.pending)}"
                + (f" ({len(self.removed)} partial shard manifest(s) removed)"
                   if self.removed else "")
                + "; run the same command again to ingest the rest")


def id_list(ids: list[str]) -> str:
    """``000001, 000002`` or, for 6 ids or more, ``000001..000043`` (one short line)."""
    return ", ".join(ids) if len(ids) < 6 else f"{ids[0]}..{ids[-1]}"


def recorded_shards(store: Store) -> list[str]:
    """Shard ids the ingest state records for some input, sorted (the partitions to register)."""
    state = store.read_json(layout.INGEST_STATE) if store.exists(layout.INGEST_STATE) else {}
    return sorted({s for shards in state.get("ingested", {}).values() for s in shards})


def unrecorded(store: Store, state: dict) -> list[str]:
    """Shard ids with a manifest under ``inputs/`` that ``state`` records for no input."""
    recorded = {s for shards in state.get("ingested", {}).values() for s in shards}
    return [s for s in layout.shard_ids(store, layout.INPUTS, layout.MANIFEST_SUFFIX)
            if s not in recorded]


def remove_leftovers(store: Store, state: dict) -> list[str]:
    """Delete the manifests an unfinished ingest left (the caller holds the ingest lock).

    Args:
        store: storage root.
        state: the ingest state as stored (its ``open_from`` journal, if any).

    Returns:
        The removed shard ids, sorted (empty when ``state`` has no open journal).

    Raises:
        RuntimeError: a leftover already has a ``raw_shards`` commit record (message names it
            and how to resolve it); nothing is removed then.
    """
    start = state.get(OPEN)
    if start is None:
        return []
    left = [s for s in unrecorded(store, state) if s.isdigit() and int(s) >= int(start)]
    built = sorted(set(left) & set(read_commits(store, "raw_shards"))) if left else []
    if built:
        raise RuntimeError(
            f"shard manifest(s) {id_list(built)} were left by an interrupted ingest but "
            f"already have a raw_shards commit record: delete {layout.INPUTS}/<shard>"
            f"{layout.MANIFEST_SUFFIX} and its commit record by hand, then ingest again")
    for sid in left:
        store.rm(layout.manifest(sid))
    return left


def check_free(store: Store, state: dict) -> None:
    """Refuse to start when a manifest the state does not record sits where the next shard ids
    go (``>= next_shard``) and no journal explains it (a stale state): never overwrite it.

    Raises:
        RuntimeError: names the first such shard and how to resolve it.
    """
    clash = [s for s in unrecorded(store, state) if s.isdigit() and int(s) >= state["next_shard"]]
    if clash:
        raise RuntimeError(
            f"shard {clash[0]} exists but {layout.INGEST_STATE} says it is free: the ingest state "
            "is out of date; not overwriting it (if no other ingest writes this root and "
            f"{id_list(clash)} are leftovers of an interrupted ingest, delete "
            f"{layout.INPUTS}/<shard>{layout.MANIFEST_SUFFIX} for them and ingest again)")


def close_journal(store: Store) -> list[str]:
    """On the way out of a failed or interrupted ingest (lock held): remove its partial
    manifests and drop the journal, so the root is as the last completed input left it.

    Returns:
        The removed shard ids; empty, journal kept, when that fails (the next ingest retries).
    """
    try:
        state = store.read_json(layout.INGEST_STATE)
        left = remove_leftovers(store, state)
        state.pop(OPEN, None)
        store.write_json(layout.INGEST_STATE, state)
        return left
    except Exception:  # noqa: BLE001 - the original error matters; the journal stays
        return []

