"""One SemDeDup range scored from the store and its key, and the ranges' scores gathered back
for the finishing step (the stored plan: :mod:`.semdedup_plan`; the scoring rule:
:func:`~.semdedup_ranges.score_range`, identical to :func:`~.semdedup.semdedup_space`).

Memory: a range holds its job (20 B per point), its rows as float16 (2·D B per point) and the
cluster being scored as float32; gathering holds 12 B per point of the space (scores,
partners) + one range table at a time.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from mm_assets.core import layout, schemas
from mm_assets.core.semantic.semdedup import SemDedupConfig
from mm_assets.core.semantic.semdedup_plan import (
    SCORING_FIELDS,
    RangePlan,
    RangePlanError,
    read_plan,
)
from mm_assets.core.semantic.semdedup_ranges import RangeJob, score_range
from mm_assets.core.storage import Store


def score_planned_range(store: Store, key: str, cfg: SemDedupConfig, device: str = "cpu"
                        ) -> tuple[int, int]:
    """Score one range of the current plan and write its table and sidecar (atomic each;
    the sidecar last). Memory: one range (module doc).

    Returns:
        ``(points in the job, finite scores written)``.

    Raises:
        RangePlanError: no plan, or ``key`` is not one of its ranges.
        ValueError: an embedding file changed shape since planning.
    """
    plan = read_plan(store)
    space, sp, (_, c0, c1, _) = plan.find(key)
    t = store.read_table(layout.semdedup_range_job(key), schemas.SEMDEDUP_RANGE_JOB)
    job = RangeJob(c0, c1, t["position"].to_numpy(), t["cluster"].to_numpy().astype(np.int64),
                   t["distance"].to_numpy())
    pos, s, p = score_range(sp.vectors(store, space), job, cfg, device)
    store.write_table(layout.semdedup_range_scores(key), pl.DataFrame(
        {"position": pos, "score": s, "partner": p}, schema=schemas.SEMDEDUP_RANGE_SCORES),
        schemas.SEMDEDUP_RANGE_SCORES)
    n_ok = int(np.isfinite(s).sum())
    store.write_json(layout.semdedup_range_meta(key), {
        "plan_id": plan.plan_id, "key": key, "rows": len(pos), "finite": n_ok,
        **{f: getattr(cfg, f) for f in SCORING_FIELDS}})
    return len(job.positions), n_ok


def gather_scores(store: Store, plan: RangePlan, space: str
                  ) -> tuple[np.ndarray, np.ndarray, dict]:
    """One space's scores and partners in corpus order from its range tables.

    Returns:
        ``(scores (N,) float32 NaN where not scored, partner (N,) int64 -1: none,
        scoring settings {ranking, seed, block} the ranges used)``.

    Raises:
        RangePlanError: a range is missing, was scored for another plan, has another row
            count than its job, or the ranges used different settings (all named at once).
    """
    sp = plan.spaces[space]
    scores = np.full(sp.n, np.nan, np.float32)
    partner = np.full(sp.n, -1, np.int64)
    missing, stale, settings = [], [], {}
    for key, _, _, n in sp.ranges:
        meta_rel = layout.semdedup_range_meta(key)
        if not store.exists(meta_rel):
            missing.append(key)
            continue
        meta = store.read_json(meta_rel)
        if meta.get("plan_id") != plan.plan_id or meta.get("rows") != n:
            stale.append(key)
            continue
        settings.setdefault(tuple(meta[f] for f in SCORING_FIELDS), []).append(key)
        t = store.read_table(layout.semdedup_range_scores(key), schemas.SEMDEDUP_RANGE_SCORES)
        pos = t["position"].to_numpy()
        scores[pos], partner[pos] = t["score"].to_numpy(), t["partner"].to_numpy()
    problems = []
    if missing:
        problems.append(f"{len(missing)} range(s) not scored ({', '.join(missing[:5])}"
                        f"{', …' if len(missing) > 5 else ''})")
    if stale:
        problems.append(f"{len(stale)} range(s) scored for another plan ({', '.join(stale[:5])})")
    if len(settings) > 1:
        problems.append("ranges scored with different settings: " + "; ".join(
            f"{dict(zip(SCORING_FIELDS, s, strict=True))}: {', '.join(ks[:3])}"
            for s, ks in settings.items()))
    if problems:
        raise RangePlanError(f"SemDeDup plan {plan.plan_id}, space {space}: "
                             + "; ".join(problems) + ": materialize those semdedup_range "
                             "partitions (`mm-assets run --select semdedup_range --missing`)")
    used = dict(zip(SCORING_FIELDS, next(iter(settings)), strict=True)) if settings else {}
    return scores, partner, used


def range_counts(key: str, store: Store, cfg: SemDedupConfig, device: str = "cpu"):
    """:func:`score_planned_range` as a per-partition step: ``(StageCounts, metadata)`` with
    ``n_in`` = the job's points and ``n_out`` = finite scores written (module-level, so worker
    processes can run it)."""
    from mm_assets.core.records import StageCounts

    n_in, n_ok = score_planned_range(store, key, cfg, device)
    return StageCounts(n_in, n_ok), {"points": n_in, "ranking": cfg.ranking}
