"""SemDeDup cluster ranges as stored units of work: a plan, one job table per range, one score
table per range, and the finishing step that reads them back (Abbas et al. 2023, "SemDeDup",
arXiv:2303.09540; scoring and decisions are those of :mod:`.semdedup` via :mod:`.semdedup_ranges`).

Three steps, each runnable in its own process or pod (the Dagster assets ``semdedup_plan``,
``semdedup_range`` per range partition, ``semdedup``):

1. :func:`make_plan` / :func:`write_plan`: per space, the contiguous cluster ranges of
   :func:`~.semdedup_ranges.plan_ranges` (≤ ``range_bytes`` of vectors each), every range's
   job (space positions of its unique points, cluster, centroid distance) written to
   ``semdedup_ranges/jobs/{key}.parquet``, then ``semdedup_ranges/plan.json`` (written last).
   The plan id is a digest of everything the ranges depend on (clusters' and
   exact_duplicates' table digests, the embedding shards and their row counts, the budget),
   so the same inputs give the same plan, keys and bytes; range keys carry it
   (``image__r0007__p3fa2b1c9``), so a range scored for an older plan can never pass for one
   of the current plan, and :func:`withdraw` removes the files and commit records of every
   range not in the current plan.
2. :func:`~.semdedup_scoring.score_planned_range`: one range, given only the store and its
   key: reads its job table and only its rows of the per-shard embedding files
   (:class:`~.semdedup_ranges.ShardVectors`, memory-mapped on a local root), scores them
   (:func:`~.semdedup_ranges.score_range`), writes ``semdedup_ranges/scores/{key}.parquet``
   and a sidecar JSON (plan id, ranking, seed, block, rows). **What a pod launcher needs**: the
   storage root (fsspec URL and credentials) and one range key per pod; nothing else is shared.
3. :func:`~.semdedup_scoring.gather_scores`: the finishing step puts every range's scores of
   one space back in corpus order, refusing a missing range, one scored for another plan, or
   ranges scored with different settings; :func:`~.semdedup.finish_space` then gives ε,
   decisions and the pHash confirmation exactly as before.

Memory model (N points of a space, U unique, D dims):
- plan: the assignment table with keys (≈ 60–100 B per point) + ≈ 44 B per unique point while
  planning (as :func:`~.semdedup_ranges.semdedup_ranges`' coordinator); never a vector;
- one range: its job (20 B per point) + its rows as float16 (2·D B per point, ≤ the budget
  unless one cluster is larger) + the cluster being scored as float32;
- finishing: scores 4 B + partners 8 B per point + ≈ 17 B per point in one range table at a
  time (plus what the caller holds: keys, cluster ids).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import polars as pl
import xxhash

from mm_assets.core import layout, schemas
from mm_assets.core.commits import read_commits, uncommit
from mm_assets.core.semantic.semdedup_ranges import RangeJob, ShardVectors, plan_ranges
from mm_assets.core.storage import Store

PLAN_VERSION = 1
RANGE_ASSET = "semdedup_range"  # the commit records of the range partitions
SCORING_FIELDS = ("ranking", "seed", "block")  # what a range's scores depend on


class RangePlanError(RuntimeError):
    """The plan or a range's scores are missing, stale or inconsistent (message says what to
    re-materialize)."""


@dataclass(frozen=True, slots=True)
class SpacePlan:
    """One embedding space in a plan.

    Attributes:
        shards: embedding shard ids in corpus order; counts: rows per shard; dim: D.
        ranges: ``(key, c0, c1, n)`` per range: clusters ``c0..c1-1``, ``n`` unique points.
    """

    shards: tuple[str, ...]
    counts: tuple[int, ...]
    dim: int
    ranges: tuple[tuple[str, int, int, int], ...]

    @property
    def n(self) -> int:
        return int(sum(self.counts))

    def vectors(self, store: Store, space: str) -> ShardVectors:
        """Where this space's vectors are (the per-shard ``embeddings/{shard}/{space}.npy``)."""
        return ShardVectors(store, tuple(layout.embedding_vectors(s, space) for s in self.shards),
                            np.array(self.counts, np.int64), self.dim)


@dataclass(frozen=True, slots=True)
class RangePlan:
    """Attributes:
    plan_id: 16 hex chars, digest of everything the ranges depend on (module doc).
    upstream: asset -> its commit record's output digests when planned.
    range_bytes: vector bytes budget per range; min_ranges: the work split asked for.
    spaces: space -> :class:`SpacePlan`.
    """

    plan_id: str
    upstream: dict
    range_bytes: int
    min_ranges: int
    spaces: dict

    def keys(self) -> list[str]:
        """Every range key, space by space, in range order."""
        return [r[0] for sp in self.spaces.values() for r in sp.ranges]

    def find(self, key: str) -> tuple[str, SpacePlan, tuple[str, int, int, int]]:
        """``(space, its plan, the range)`` of ``key``.

        Raises:
            RangePlanError: ``key`` is not a range of this plan (stale or mistyped).
        """
        for space, sp in self.spaces.items():
            for r in sp.ranges:
                if r[0] == key:
                    return space, sp, r
        raise RangePlanError(f"{key} is not a range of the current SemDeDup plan "
                             f"{self.plan_id} ({len(self.keys())} ranges): it belongs to an "
                             "older plan; materialize the current plan's ranges")

    def to_json(self) -> dict:
        return {"version": PLAN_VERSION, "plan_id": self.plan_id, "upstream": self.upstream,
                "range_bytes": self.range_bytes, "min_ranges": self.min_ranges,
                "spaces": {s: {"shards": list(p.shards), "counts": list(p.counts),
                               "dim": p.dim, "ranges": [list(r) for r in p.ranges]}
                           for s, p in self.spaces.items()}}

    @staticmethod
    def from_json(d: dict) -> RangePlan:
        if d.get("version") != PLAN_VERSION:
            raise RangePlanError(f"SemDeDup plan version {d.get('version')} is not "
                                 f"{PLAN_VERSION}: re-materialize semdedup_plan")
        return RangePlan(d["plan_id"], d["upstream"], d["range_bytes"], d["min_ranges"], {
            s: SpacePlan(tuple(p["shards"]), tuple(p["counts"]), p["dim"],
                         tuple((r[0], r[1], r[2], r[3]) for r in p["ranges"]))
            for s, p in d["spaces"].items()})


def range_key(space: str, i: int, plan_id: str) -> str:
    """``{space}__r{i:04d}__p{plan_id[:8]}``: the partition key of one range."""
    return f"{space}__r{i:04d}__p{plan_id[:8]}"


def auto_min_ranges(n: int, min_ranges: int) -> int:
    """``min_ranges`` when > 0; else 1 below 100k points (the byte budget alone splits) and
    4 per core above (so a batch of ranges keeps every worker busy)."""
    if min_ranges > 0:
        return min_ranges
    return 1 if n < 100_000 else 4 * max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class SpaceInput:
    """What :func:`make_plan` needs of one space (corpus order).

    Attributes:
        shards / counts / dim: as :class:`SpacePlan`.
        assign: (N,) int cluster ids ≥ 0; distance: (N,) float32; unique: (N,) bool (False:
            an exact duplicate, never scored).
    """

    shards: tuple[str, ...]
    counts: tuple[int, ...]
    dim: int
    assign: np.ndarray
    distance: np.ndarray
    unique: np.ndarray


def make_plan(spaces: dict[str, SpaceInput], upstream: dict, range_bytes: int,
              min_ranges: int = 0) -> tuple[RangePlan, dict[str, RangeJob]]:
    """The ranges of every space and their jobs (not yet written).

    Args:
        spaces: space -> its inputs.
        upstream: what the plan was made from (e.g. the output digests of clusters and
            exact_duplicates); part of the plan id.
        range_bytes: most vector bytes per range; min_ranges: see :func:`auto_min_ranges`.

    Returns:
        ``(plan, key -> job)``.

    Raises:
        ValueError: arrays whose length is not the space's row count.
    """
    ident = {"v": PLAN_VERSION, "upstream": upstream, "range_bytes": range_bytes,
             "min_ranges": min_ranges,
             "spaces": {s: [list(i.shards), list(i.counts), i.dim] for s, i in spaces.items()}}
    plan_id = xxhash.xxh3_64_hexdigest(json.dumps(ident, sort_keys=True).encode())
    out, jobs = {}, {}
    for space, inp in spaces.items():
        n = int(sum(inp.counts))
        if inp.assign.shape != (n,):
            raise ValueError(f"{space}: assign has shape {inp.assign.shape}, the embeddings "
                             f"{n} rows")
        plan = plan_ranges(np.asarray(inp.assign), inp.distance, inp.unique, 2 * inp.dim,
                           range_bytes, auto_min_ranges(n, min_ranges))
        ranges = []
        for i, job in enumerate(plan):
            key = range_key(space, i, plan_id)
            jobs[key] = job
            ranges.append((key, int(job.c0), int(job.c1), len(job.positions)))
        out[space] = SpacePlan(tuple(inp.shards), tuple(int(c) for c in inp.counts),
                               int(inp.dim), tuple(ranges))
    return RangePlan(plan_id, upstream, int(range_bytes), int(min_ranges), out), jobs


def write_plan(store: Store, plan: RangePlan, jobs: dict[str, RangeJob]) -> list[str]:
    """Write every job table, then the plan (last), then :func:`withdraw` the ranges of any
    other plan. Returns the paths written (plan first)."""
    paths = [layout.SEMDEDUP_PLAN]
    for key, job in jobs.items():
        rel = layout.semdedup_range_job(key)
        store.write_table(rel, pl.DataFrame(
            {"position": job.positions, "cluster": job.cluster.astype(np.int32),
             "distance": job.distance}, schema=schemas.SEMDEDUP_RANGE_JOB),
            schemas.SEMDEDUP_RANGE_JOB)
        paths.append(rel)
    store.write_json(layout.SEMDEDUP_PLAN, plan.to_json())
    withdraw(store, set(plan.keys()))
    return paths


def read_plan(store: Store) -> RangePlan:
    """The current plan.

    Raises:
        RangePlanError: there is none (never planned, or withdrawn by a re-clustering).
    """
    if not store.exists(layout.SEMDEDUP_PLAN):
        raise RangePlanError(f"no SemDeDup range plan at {store.url(layout.SEMDEDUP_PLAN)} "
                             "(never planned, or withdrawn by a re-clustering): materialize "
                             "semdedup_plan, then the semdedup_range partitions")
    return RangePlan.from_json(store.read_json(layout.SEMDEDUP_PLAN))


def withdraw(store: Store, keep: set[str] | None = None) -> list[str]:
    """Remove the job and score files and the commit records of every range not in ``keep``
    (``None``: every range, and the plan itself, e.g. after a re-clustering). Returns the keys
    withdrawn."""
    if keep is None:
        store.rm(layout.SEMDEDUP_PLAN)
    keep = keep or set()
    gone = set()
    for folder, suffixes in ((layout.SEMDEDUP_RANGE_JOBS, (layout.PARQUET,)),
                             (layout.SEMDEDUP_RANGE_SCORES, (layout.PARQUET, ".json"))):
        for suffix in suffixes:
            for key in layout.shard_ids(store, folder, suffix):
                if key not in keep:
                    store.rm(layout.entry(folder, key + suffix))
                    gone.add(key)
    for key in read_commits(store, RANGE_ASSET):
        if key not in keep:
            uncommit(store, RANGE_ASSET, key)
            gone.add(key)
    return sorted(gone)


@dataclass(frozen=True, slots=True)
class RangePlanConfig:
    """How the clusters are split into range partitions.

    Attributes:
        range_mib: most vector MiB one cluster range holds in memory (a larger cluster is a
            range of its own).
        min_ranges: split each space into at least this many ranges by pairwise work (e.g.
            one or more per pod); 0 = auto: 1 below 100k points, else 4 per core.
    """

    range_mib: int = 128
    min_ranges: int = 0

    def __post_init__(self) -> None:
        if self.range_mib < 1:
            raise ValueError(f"range_mib must be >= 1, got {self.range_mib}")
        if self.min_ranges < 0:
            raise ValueError(f"min_ranges must be >= 0, got {self.min_ranges}")


UPSTREAM = ("clusters", "exact_duplicates")  # global tables a plan is made from


def upstream_digests(store: Store) -> dict:
    """asset -> output digests of the commit records of :data:`UPSTREAM` (``None``: not
    committed)."""
    from mm_assets.core.commits import GLOBAL, read_commit

    return {a: (rec or {}).get("outputs") for a in UPSTREAM
            for rec in [read_commit(store, a, GLOBAL)]}


def check_current(store: Store, plan: RangePlan) -> None:
    """Refuse a plan made from other clusters or exact-duplicate tables than today's.

    Raises:
        RangePlanError: names the asset that changed since planning.
    """
    now = upstream_digests(store)
    changed = [a for a in UPSTREAM if now.get(a) != plan.upstream.get(a)]
    if changed:
        raise RangePlanError(f"SemDeDup plan {plan.plan_id} is stale: {', '.join(changed)} "
                             "changed since it was made: materialize semdedup_plan, then the "
                             "semdedup_range partitions")
