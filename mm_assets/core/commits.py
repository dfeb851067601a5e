"""Partition commit records: the last file a partition writes, and the only proof it finished.

A record is ``{asset, partition, counts: {n_in, n_out, removed, quarantined}, outputs}``
(:func:`mm_assets.core.layout.commit`), written after every output of the partition and only
when its counts reconcile (``n_in = n_out + removed + quarantined``). A stage that also accounts
for a second unit (the images of interleaved documents) adds ``extra_counts: {unit: counts}``,
and is committed only when those reconcile too (:func:`extra_counts_of`). Global stages read the
partitions that have a record (:func:`committed`), never whatever a storage listing returns, so
a half-finished or miscounted partition is never consumed. A global asset's record lists the
content digest (xxh3-128 of the bytes) of each table it wrote; consumers key caches on those
digests (:func:`outputs_fingerprint`), so a byte-identical re-materialization reuses them.

Records carry no timestamp: re-materializing gives byte-identical records.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable

import xxhash

from mm_assets.core import layout
from mm_assets.core.records import StageCounts
from mm_assets.core.storage import Store

GLOBAL = layout.GLOBAL


class UncommittedError(RuntimeError):
    """An upstream partition a stage needs has no commit record."""


def file_digest(store: Store, rel: str, chunk: int = 8 << 20) -> str:
    """xxh3-128 hex digest of one file's bytes, streamed in ``chunk``-byte reads."""
    h = xxhash.xxh3_128()
    with store.open_read(rel) as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _counts_dict(counts: StageCounts) -> dict:
    return {"n_in": counts.n_in, "n_out": counts.n_out,
            "removed": dict(sorted(counts.removed.items())),
            "quarantined": dict(sorted(counts.quarantined.items()))}


def write_commit(store: Store, asset: str, partition: str, counts: StageCounts,
                 outputs: Iterable[str] = (), digests: bool = False,
                 extra: dict[str, StageCounts] | None = None,
                 inputs: dict[str, str] | None = None) -> dict:
    """Write the commit record of one partition (call it after every output is written).

    Args:
        store: storage root.
        asset: asset name.
        partition: shard id, recipe name, or :data:`GLOBAL`.
        counts: the partition's own counts, made where its decisions were made.
        outputs: storage-relative paths the partition wrote.
        digests: also record each output's xxh3-128 digest (reads each output once; meant for
            global tables, not for per-shard tars).
        extra: counts of other units than the asset's records (``{"images": counts}``), each
            made where its decisions were made; stored as ``extra_counts``.
        inputs: versions of the inputs the partition was built against
            (``{"index_fingerprint": fp}``), stored as ``inputs``; a consumer compares them
            with the current versions to tell a stale partition (:func:`input_version`).

    Returns:
        The record written.

    Raises:
        ValueError: the counts (or one of ``extra``) do not reconcile (nothing is committed).
    """
    for unit, c in [("", counts), *sorted((extra or {}).items())]:
        if not c.reconciles():
            raise ValueError(f"{asset}[{partition}]: {unit + ' ' if unit else ''}counts do not "
                             f"reconcile ({c.n_in} in != {c.n_out} out + {c.n_removed} removed "
                             f"+ {c.n_quarantined} quarantined); not committed")
    rec = {"asset": asset, "partition": partition, "counts": _counts_dict(counts),
           "outputs": {rel: (file_digest(store, rel) if digests else None)
                       for rel in sorted(outputs)}}
    if extra:
        rec["extra_counts"] = {u: _counts_dict(c) for u, c in sorted(extra.items())}
    if inputs:
        rec["inputs"] = dict(sorted(inputs.items()))
    store.write_bytes(layout.commit(asset, partition),
                      json.dumps(rec, indent=1, sort_keys=True).encode())
    return rec


def read_commits(store: Store, asset: str) -> dict[str, dict]:
    """Partition -> commit record of every committed partition of ``asset`` (sorted)."""
    folder = layout.commits_dir(asset)
    return {n[:-5]: json.loads(store.read_bytes(f"{folder}/{n}"))
            for n in store.ls(folder, ".json")}


def read_commit(store: Store, asset: str, partition: str) -> dict | None:
    """One partition's commit record, or None when it is not committed."""
    rel = layout.commit(asset, partition)
    return json.loads(store.read_bytes(rel)) if store.exists(rel) else None


def committed(store: Store, asset: str) -> list[str]:
    """Sorted partitions of ``asset`` that have a commit record.

    Raises:
        UncommittedError: none has (``asset`` was never materialized in this root).
    """
    parts = [n[:-5] for n in store.ls(layout.commits_dir(asset), ".json")]
    if not parts:
        raise UncommittedError(f"no committed partition of {asset} under {store.url('')}: "
                               f"materialize {asset} first")
    return parts


def uncommit(store: Store, asset: str, partition: str) -> None:
    """Remove a partition's commit record (before rewriting its outputs)."""
    rel = layout.commit(asset, partition)
    if store.exists(rel):
        store.rm(rel)


def counts_of(rec: dict) -> StageCounts:
    """The :class:`StageCounts` of a commit record."""
    c = rec["counts"]
    return StageCounts(int(c["n_in"]), int(c["n_out"]), Counter(c.get("removed", {})),
                       Counter(c.get("quarantined", {})))


def extra_counts_of(rec: dict, unit: str) -> StageCounts | None:
    """The ``unit`` counts (e.g. ``"images"``) of a commit record, or None when it has none."""
    c = rec.get("extra_counts", {}).get(unit)
    return None if c is None else counts_of({"counts": c})


def input_version(rec: dict, name: str) -> str | None:
    """The version of input ``name`` a partition was built against (its record's ``inputs``),
    or None when the record does not say (written before inputs were recorded)."""
    return rec.get("inputs", {}).get(name)


def outputs_fingerprint(store: Store, assets: Iterable[str]) -> str | None:
    """16 hex chars from the output digests in the global commit records of ``assets``, or
    None when one of them has no record with digests (the caller then falls back)."""
    parts = []
    for asset in assets:
        rec = read_commit(store, asset, GLOBAL)
        if rec is None or any(d is None for d in rec["outputs"].values()):
            return None
        parts.append([asset, rec["outputs"]])
    return xxhash.xxh3_64_hexdigest(json.dumps(parts, sort_keys=True).encode())
