"""SemDeDup as three assets: ``semdedup_plan`` (global) splits the clusters into ranges and
registers one ``semdedup_ranges`` partition per range; ``semdedup_range`` (per range) scores
one range from only its rows of the embedding files; ``semdedup`` (global) finishes: ε,
decisions and pHash confirmation from the range tables (:mod:`mm_assets.core.semantic.
semdedup_plan`).

On Kubernetes each range partition is a pod of its own (dagster-k8s, a backfill of
``semdedup_range``): a pod needs the storage root and its range key, nothing else.
"""

import dataclasses

import numpy as np
import polars as pl
from dagster import (
    AllPartitionMapping,
    AssetDep,
    AssetSelection,
    AutomationCondition,
    DagsterInstance,
    Failure,
    MaterializeResult,
    asset,
)

from mm_assets.assets._common import Timer, global_result, md_table, per_shard, upstream_shards
from mm_assets.assets.semantic import CLUSTER_TABLE, SCORES_TABLE, SPACES, sheet_markdown
from mm_assets.checks import counts_spec
from mm_assets.config import dagster_config
from mm_assets.core import layout, schemas
from mm_assets.core.records import StageCounts
from mm_assets.core.semantic.encoders import resolve_device
from mm_assets.core.semantic.semdedup import SemDedupConfig, finish_space
from mm_assets.core.semantic.semdedup_plan import (
    SCORING_FIELDS,
    RangePlanConfig,
    RangePlanError,
    SpaceInput,
    SpacePlan,
    check_current,
    make_plan,
    read_plan,
    upstream_digests,
    write_plan,
)
from mm_assets.core.semantic.semdedup_scoring import gather_scores, range_counts
from mm_assets.core.storage import Store
from mm_assets.partitions import GPU_POOL, GPU_TAGS, semdedup_ranges, shard_backfill
from mm_assets.viz.plots import removal_curve_plot
from resources.storage import StorageResource

PHASHES = schemas.subset(schemas.IMAGE_HASHES, "key", "phashes")
NON_REP = schemas.subset(schemas.EXACT_GROUPS, "key", "is_representative")


def register_ranges(instance: DagsterInstance, keys: list[str]) -> None:
    """Make ``keys`` exactly the ``semdedup_ranges`` partitions (others deleted; new ones
    added in plan order, the order Dagster's partition ranges follow)."""
    have = set(instance.get_dynamic_partitions(semdedup_ranges.name))
    for k in sorted(have - set(keys)):
        instance.delete_dynamic_partition(semdedup_ranges.name, k)
    new = [k for k in keys if k not in have]
    if new:
        instance.add_dynamic_partitions(semdedup_ranges.name, new)


def _non_representatives(store: Store) -> pl.Series:
    groups = store.read_table(layout.EXACT_GROUPS, NON_REP)
    return groups.filter(~pl.col("is_representative"))["key"]


def _space_input(store: Store, space: str, a: pl.DataFrame, non_rep: pl.Series) -> SpaceInput:
    """One space's embedding shards and row counts (key tables), checked against the
    cluster assignment (same keys in the same order)."""
    shards, counts, keys, dim = [], [], [], 0
    for shard in upstream_shards(store, "embeddings"):
        ks = store.read_table(layout.embedding_keys(shard, space), schemas.EMBEDDING_KEYS)["key"]
        shards.append(shard)
        counts.append(len(ks))
        keys.append(ks)
        if len(ks) and not dim:
            dim = int(store.read_npy(layout.embedding_vectors(shard, space)).shape[1])
    keys = pl.concat(keys) if keys else pl.Series("key", [], pl.Utf8)
    if not keys.equals(a["key"]):
        raise Failure(f"clusters are stale for space {space}: re-materialize clusters")
    return SpaceInput(tuple(shards), tuple(counts), dim, a["cluster"].to_numpy(),
                      a["distance"].to_numpy(), (~a["key"].is_in(non_rep.implode())).to_numpy())


PlanConfig = dagster_config(RangePlanConfig, "SemDedupPlanConfig")


@asset(deps=["clusters", "exact_duplicates", "embeddings"], group_name="semantic",
       check_specs=[counts_spec("semdedup_plan")])
def semdedup_plan(context, config: PlanConfig, storage: StorageResource) -> MaterializeResult:
    """SemDeDup cluster ranges (``semdedup_ranges/plan.json`` + one job table per range):
    contiguous clusters of unique points, ≤ ``range_mib`` of vectors each; registers them as
    the ``semdedup_ranges`` partitions (``{space}__r{i:04d}__p{plan id}``) and withdraws any
    other plan's. Counts: every point is placed (in a range, or an exact duplicate not
    scored). Memory ≈ the assignment table (≈ 60–100 B per point) + ≈ 44 B per unique point."""
    store, cfg = storage.store(), config.core()
    assign = store.read_table(CLUSTER_TABLE, schemas.CLUSTER_ASSIGNMENTS)
    non_rep = _non_representatives(store)
    with Timer() as t:
        spaces = {s: _space_input(store, s, assign.filter(pl.col("space") == s), non_rep)
                  for s in SPACES}
        plan, jobs = make_plan(spaces, upstream_digests(store), cfg.range_mib * 2**20,
                               cfg.min_ranges)
        paths = write_plan(store, plan, jobs)
        register_ranges(context.instance, plan.keys())
    n_in = sum(len(i.assign) for i in spaces.values())
    counts = StageCounts(n_in, sum(len(j.positions) for j in jobs.values())
                         + sum(int((~i.unique).sum()) for i in spaces.values()))
    meta = {"plan_id": plan.plan_id, "ranges": len(jobs), "seconds": t.seconds,
            **{f"{s}_ranges": len(p.ranges) for s, p in plan.spaces.items()},
            "largest_range_points": max((len(j.positions) for j in jobs.values()), default=0)}
    return global_result(store, "semdedup_plan", counts, paths[:1], meta)


RangeConfig = dagster_config(SemDedupConfig, "SemDedupRangeConfig", include=SCORING_FIELDS,
                             extra={
    "device": (str, "auto", "auto (cuda when present), cpu, cuda, cuda:1"),
    "workers": (int, 0, ("processes for the ranges of one run (a batch); 0 = auto: 1 on a "
                         "GPU, else one per core"))})


# a range reads its rows from every shard's embeddings: every shard is upstream of every range
@asset(partitions_def=semdedup_ranges, backfill_policy=shard_backfill,
       deps=["semdedup_plan", AssetDep("embeddings", partition_mapping=AllPartitionMapping())],
       group_name="semantic",
       check_specs=[counts_spec("semdedup_range")], op_tags=GPU_TAGS, pool=GPU_POOL,
       # after each new plan; a newly embedded shard alone changes nothing until re-planned
       automation_condition=AutomationCondition.eager().ignore(AssetSelection.assets(
           "embeddings")))
def semdedup_range(context, config: RangeConfig, storage: StorageResource) -> MaterializeResult:
    """SemDeDup scores of one cluster range of the current plan
    (``semdedup_ranges/scores/{key}.parquet``: position, score, partner position; sidecar
    JSON with the plan id and the ranking/seed/block used), reading only the range's rows of
    the per-shard embedding files (memory-mapped on a local root). A key of an older plan
    fails. Memory: the range's vectors (2·D B per point, ≤ ``range_mib`` unless one cluster
    is larger) + its cluster as float32. A batch of ranges runs on ``workers`` processes."""
    store, cfg = storage.store(), config.core()
    device = resolve_device(config.device)
    workers = config.workers or (1 if device.startswith("cuda") else 0)
    return per_shard(context, "semdedup_range", range_counts, store, cfg, device,
                     workers=workers)


SemDedupAssetConfig = dagster_config(SemDedupConfig, "SemDedupAssetConfig",
                                     exclude=SCORING_FIELDS)


def phash_lookup(store: Store, sp: SpacePlan, keys: pl.Series):
    """A :data:`~mm_assets.core.semantic.semdedup.PhashLookup` reading only the image_hashes
    shards that hold the asked points.

    Raises (when called):
        ValueError: an asked key has no image_hashes row (re-materialize image_hashes).
    """
    starts = np.concatenate([[0], np.cumsum(sp.counts)])
    n = len(keys)

    def lookup(positions: np.ndarray) -> dict[int, list[int]]:
        pos = np.asarray(positions, np.int64)
        at = np.where(pos < 0, pos + n, pos)  # partner -1 indexes from the end, as a list did
        shard_of = np.searchsorted(starts, at, side="right") - 1
        out: dict[int, list[int]] = {}
        for i in np.unique(shard_of):
            sel = shard_of == i
            want = dict(zip(keys.gather(at[sel]).to_list(), pos[sel].tolist(), strict=True))
            t = store.read_table(layout.image_hashes(sp.shards[i]), PHASHES).filter(
                pl.col("key").is_in(list(want)))
            out.update((want[k], list(p or [])) for k, p in t.select("key", "phashes").iter_rows())
        if len(out) < len(set(pos.tolist())):
            raise ValueError(f"{len(set(pos.tolist())) - len(out)} image samples have no "
                             "image_hashes row: re-materialize image_hashes")
        return out

    return lookup


def _finish(store: Store, plan, space: str, a: pl.DataFrame, non_rep: pl.Series,
            config) -> tuple[pl.DataFrame, object]:
    """Decisions of one space from its range tables (memory: module doc of semdedup_plan)."""
    sp = plan.spaces[space]
    if a.height != sp.n:
        raise RangePlanError(f"space {space}: {a.height} assigned points, the plan {sp.n}: "
                             "materialize semdedup_plan")
    uniq = (~a["key"].is_in(non_rep.implode())).to_numpy()
    scores, partner, used = gather_scores(store, plan, space)
    if not np.array_equal(np.isfinite(scores), uniq):
        raise RangePlanError(f"space {space}: scored points differ from the unique points: "
                             "materialize semdedup_plan and its ranges")
    cfg = dataclasses.replace(config.core(), **used)
    ph = phash_lookup(store, sp, a["key"]) if space == "image" else None
    res = finish_space(scores, partner, a["cluster"].to_numpy(), uniq, cfg, ph)
    keys = a["key"]
    partner_keys = keys.gather(pl.Series(res.partner).replace(-1, None))
    frame = a.select("key", "space", "cluster").with_columns(
        pl.Series("unique", uniq), pl.Series("score", res.scores),
        pl.Series("duplicate", res.duplicate), partner_keys.alias("partner"),
        pl.Series("unconfirmed", res.unconfirmed))
    return frame, (res, cfg)


@asset(deps=["semdedup_range", "semdedup_plan", "clusters", "exact_duplicates", "image_hashes"],
       group_name="semantic", check_specs=[counts_spec("semdedup")],
       # once every range of the plan is scored (upstream changes arrive through the plan)
       automation_condition=AutomationCondition.eager().ignore(AssetSelection.assets(
           "image_hashes", "clusters", "exact_duplicates")))
def semdedup(context, config: SemDedupAssetConfig, storage: StorageResource
             ) -> MaterializeResult:
    """SemDeDup score per unique sample (exact duplicates resolved first and reported apart),
    the ε used per space, and the duplicate decision (``semdedup/scores.parquet``), from the
    ``semdedup_range`` tables of the current plan (refused when a range is missing, was
    scored for another plan, or clusters / exact_duplicates changed since planning; the
    ranking, seed and block are those the ranges were scored with). Image duplicates in dense
    clusters (text pages, templated charts) are confirmed by pHash (``unconfirmed``: above the
    threshold but kept); only the pHashes of those candidates and their partners are read.
    Memory ≈ the assignment table (keys as Arrow strings, ≈ key length + 17 B per point) +
    12 B per point (scores, partners) + ≈ 100 B per pHash candidate; never a vector."""
    store = storage.store()
    upstream_shards(store, "image_hashes")  # every shard's hashes committed
    try:
        plan = read_plan(store)
        check_current(store, plan)
    except RangePlanError as e:
        raise Failure(str(e)) from e
    assign = store.read_table(CLUSTER_TABLE, schemas.CLUSTER_ASSIGNMENTS)
    non_rep = _non_representatives(store)
    frames, meta, cfg = [], {}, config.core()
    with Timer() as t:
        for space in SPACES:
            try:
                frame, (res, cfg) = _finish(store, plan, space,
                                            assign.filter(pl.col("space") == space), non_rep,
                                            config)
            except RangePlanError as e:
                raise Failure(str(e)) from e
            frames.append(frame)
            meta[f"{space}_epsilon"] = res.epsilon
            if space == "image":
                meta["image_dense_clusters"] = ", ".join(map(str, res.dense)) or "none"
                meta["image_unconfirmed_kept"] = int(res.unconfirmed.sum())
            if res.n_unique:
                meta[f"{space}_removal_curve"] = removal_curve_plot(res.scores, res.epsilon,
                                                                       space)
    table = pl.concat(frames)
    store.write_table(SCORES_TABLE, table, schemas.SEMDEDUP_SCORES)
    return _result(store, table, meta, config, cfg, plan, t.seconds)


def _result(store: Store, table: pl.DataFrame, meta: dict, config, cfg, plan, seconds
            ) -> MaterializeResult:
    pairs = table.filter(pl.col("duplicate") & (pl.col("space") == "image")).sort(
        "score", descending=True).head(12)
    if pairs.height:
        meta["example_pairs"] = sheet_markdown(store, layout.SEMDEDUP_PAIRS, [
            ((f"cluster {r['cluster']}, cos {r['score']:.3f}\nleft kept: {r['partner']}\n"
              f"right removed: {r['key']}"), [r["partner"], r["key"]])
            for r in pairs.iter_rows(named=True)], thumb=250, label_width=300)
    n_dup, n_uniq = int(table["duplicate"].sum()), int(table["unique"].sum())
    # counted from the decisions: kept = unique and not a SemDeDup duplicate
    counts = StageCounts(table.height,
                         table.filter(pl.col("unique") & ~pl.col("duplicate")).height)
    counts.removed["semdedup"] = int((table["unique"] & table["duplicate"]).sum())
    counts.removed["exact_duplicate"] = int((~table["unique"]).sum())
    per_cluster = table.filter(pl.col("unique")).group_by("space", "cluster").agg(
        pl.len().alias("unique"), pl.col("duplicate").sum().alias("removed")).sort(
        "removed", descending=True).head(15)
    return global_result(store, "semdedup", counts, [SCORES_TABLE], {
        **meta, "unique_samples": n_uniq,
        "fraction_removed_of_unique": n_dup / max(1, n_uniq), "per_cluster": md_table(per_cluster),
        "target_fraction": config.target_fraction, "ranking": cfg.ranking,
        "plan_id": plan.plan_id, "ranges": len(plan.keys()),
        "boundary": "duplicate when score >= 1 - epsilon", "seconds": seconds})
