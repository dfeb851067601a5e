"""Counts of one asset summed over all its partitions, read from what the stages committed.

The source is the partition commit records (``_commits/{asset}/{partition}.json``: ``counts``
``{n_in, n_out, removed, quarantined}`` written last by each partition). A root materialized
before commit records existed has none; its counts are then rebuilt from the stage outputs
(quarantine tables, hash tables, decision tables, tar member names, mixture manifests) and the
:class:`Totals` says so (``source="outputs"``).
"""

from __future__ import annotations

import re
import tarfile
from collections import Counter
from dataclasses import dataclass, field

import polars as pl

from mm_assets.core import layout, schemas
from mm_assets.core.commits import counts_of, read_commits
from mm_assets.core.records import StageCounts
from mm_assets.core.storage import Store

GLOBAL = layout.GLOBAL  # partition name of a global asset's commit record
COMMITS = layout.COMMITS
SPLIT_PART = re.compile(r"-part\d+$")


@dataclass(slots=True)
class Totals:
    """Counts of one asset summed over its partitions.

    Attributes:
        asset: asset name.
        partitions: committed partitions (shard ids, recipe names, or ``["all"]``).
        counts: the summed :class:`StageCounts` (empty when nothing is committed).
        source: ``"commit records"`` or ``"outputs"`` (rebuilt, no commit records found).
        per: partition -> its own counts.
    """

    asset: str
    partitions: list[str] = field(default_factory=list)
    counts: StageCounts = field(default_factory=StageCounts)
    source: str = "commit records"
    per: dict[str, StageCounts] = field(default_factory=dict)

    def add(self, partition: str, counts: StageCounts) -> None:
        self.partitions.append(partition)
        self.per[partition] = counts
        self.counts.n_in += counts.n_in
        self.counts.n_out += counts.n_out
        self.counts.removed.update(counts.removed)
        self.counts.quarantined.update(counts.quarantined)


def _from_record(rec: dict) -> StageCounts:
    return counts_of(rec)


def commit_records(store: Store, asset: str) -> dict[str, dict]:
    """Partition -> commit record of every committed partition of ``asset`` (sorted)."""
    return read_commits(store, asset)


def totals(store: Store, asset: str) -> Totals:
    """Counts of ``asset`` summed over its committed partitions (see the module docstring).

    Raises:
        ValueError: ``asset`` has neither commit records nor a known way to rebuild its counts.
    """
    records = commit_records(store, asset)
    out = Totals(asset)
    if records:
        for part, rec in records.items():
            out.add(part, _from_record(rec))
        return out
    out.source = "outputs"
    if asset not in _REBUILD:
        raise ValueError(f"no commit records for {asset} and no rule to rebuild its counts")
    for part, counts in _REBUILD[asset](store):
        out.add(part, counts)
    return out


def tar_keys(store: Store, rel: str) -> list[str]:
    """Sample keys of a canonical tar from its member names (headers only, data skipped)."""
    keys: dict[str, None] = {}
    with store.open_read(rel) as f, tarfile.open(fileobj=f, mode="r:") as tf:
        for m in tf:
            if m.isfile() and m.name.endswith(".json"):
                keys[m.name[:-5]] = None
    return list(keys)


# ------------------------------------------------------------------ rebuilt from outputs
def _shards(store: Store, folder: str, suffix: str) -> list[str]:
    return layout.shard_ids(store, folder, suffix)


def _raw(store: Store):
    for shard in _shards(store, layout.quarantine_dir(layout.RAW_SHARDS), layout.PARQUET):
        q = Counter(store.read_table(layout.quarantine(layout.RAW_SHARDS, shard),
                                     schemas.QUARANTINE)["reason"])
        n_out = len(tar_keys(store, layout.raw_shard(shard)))
        yield shard, StageCounts(n_out + sum(q.values()), n_out, quarantined=q)


def _exact(store: Store):
    if not store.exists(layout.EXACT_GROUPS):
        return
    groups = store.read_table(layout.EXACT_GROUPS, schemas.subset(schemas.EXACT_GROUPS, "action"))
    n = sum(store.parquet_rows(layout.image_hashes(s))
            for s in _shards(store, layout.IMAGE_HASHES, layout.PARQUET))
    removed = groups.filter(pl.col("action") == "remove").height
    yield GLOBAL, StageCounts(n, n - removed, Counter({"exact_duplicate": removed}))


def _curated(store: Store):
    for shard in _shards(store, layout.CURATED, layout.DECISIONS_SUFFIX):
        d = store.read_table(layout.curated_decisions(shard), schemas.CURATED_DECISIONS)
        removed = Counter(d.filter(pl.col("status") == "removed")["reason"].to_list())
        yield shard, StageCounts(d.height, d.height - sum(removed.values()), removed)


def sharded_keys(store: Store, asset: str) -> list[str]:
    """Keys of every ``{asset}/*.tar`` (``merged``, ``rephrased``), in shard order."""
    return [k for n in store.ls(asset, layout.TAR)
            for k in tar_keys(store, layout.entry(asset, n))]


def split_parts(keys: list[str]) -> int:
    """Extra parts of merged groups longer than ``max_turns`` (keys ``{first}-part{i}``)."""
    return sum(1 for k in keys if SPLIT_PART.search(k))


def _merged(store: Store):
    keys = sharded_keys(store, layout.MERGED)
    if keys:
        n_in = sum(c.n_out for _, c in _curated(store))
        n_out = len(keys) - split_parts(keys)
        yield GLOBAL, StageCounts(n_in, n_out, Counter({"merged_into_group": n_in - n_out}))


def _rephrased(store: Store):
    keys = sharded_keys(store, layout.REPHRASED)
    if keys:
        yield GLOBAL, StageCounts(len(keys), len(keys))


def _mixtures(store: Store):
    for name in store.ls(layout.MIXTURES):
        if not store.exists(layout.mixture_manifest(name)):
            continue
        m = store.read_json(layout.mixture_manifest(name))
        src = m["source"]
        drawn = len({(s["origin"], s["source_key"]) for s in m["samples"]})
        removed = Counter(src["removed"])
        removed["not_sampled"] = src["eligible"] - drawn
        yield name, StageCounts(src["samples"], drawn, removed, Counter(src["quarantined"]))


_REBUILD = {"raw_shards": _raw, "exact_duplicates": _exact, "curated": _curated,
            "merged": _merged, "rephrased": _rephrased,
            "mixtures": _mixtures}


def corpus_metadata(store: Store, asset: str) -> dict[str, int | str]:
    """Corpus totals of a per-shard asset for its materialization metadata: every committed
    partition's counts summed (``corpus_shards``, ``corpus_n_in``, ``corpus_n_out``,
    ``corpus_removed_{reason}``, ``corpus_quarantined_{reason}``), so the asset page shows the
    corpus beside the shard it last materialized. Empty when ``asset`` has no commit records.

    Cost: one small JSON read per committed partition of ``asset``.
    """
    records = commit_records(store, asset)
    if not records:
        return {}
    t = Totals(asset)
    for part, rec in records.items():
        t.add(part, _from_record(rec))
    c = t.counts
    meta: dict[str, int | str] = {"corpus_shards": len(t.partitions), "corpus_n_in": c.n_in,
                                  "corpus_n_out": c.n_out}
    meta |= {f"corpus_removed_{k}": v for k, v in sorted(c.removed.items())}
    meta |= {f"corpus_quarantined_{k}": v for k, v in sorted(c.quarantined.items())}
    meta["corpus_note"] = (f"summed over the {len(t.partitions)} committed shards when this "
                           "materialization finished; the report asset has the whole funnel")
    return meta
