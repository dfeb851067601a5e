"""The order of the graph's layers and the partitions each layer runs (``mm-assets run``).

:func:`_plan` turns a selection into ``(assets, partition keys)`` per layer; keys known only
when a layer starts (the SemDeDup range partitions planned by the layer before, the doc shards
whose commits ``doc_repeats`` may withdraw, and with ``--missing`` the curated shards, pool
shards and mining recipes made stale by the global layers before them) are callables resolved
then. :func:`_batched` groups consecutive shard keys into partition-range runs (``--batch``).
"""

from __future__ import annotations

from collections.abc import Callable

from mm_assets.interleaved_plan import DOC_ASSETS, DOC_LAYERS, doc_layer_keys

LAYERS: list[tuple[str, list[str]]] = [
    ("shards", ["raw_shards", "image_hashes", "embeddings", "ppl_scores", "text_quality"]),
    ("global", ["exact_duplicates", "clusters", "ppl_deciles", "semdedup_plan"]),
    ("semdedup_ranges", ["semdedup_range"]),  # keys: the plan's ranges, read when it starts
    ("global", ["semdedup"]),
    ("shards", ["curated"]),
    ("global", ["merged", "rephrased"]),
    ("synthetic", ["synthetic", "synthetic_checked"]),
    ("pool_shards", ["pool_assign"]),
    ("mining", ["mined"]),
    *DOC_LAYERS,  # interleaved documents, when the root has doc shards (interleaved_plan)
    ("recipes", ["mixtures"]),
    ("global", ["report"]),
]
REPORTS = ["report"]  # summaries over the stages: no counts of their own
# built only for what a root has (or names), not by every run: synthetic-data specs, shards
# of registered pools (mm-assets pool add), mining recipes (they need a pool)
OPTIONAL = ["synthetic", "synthetic_checked", "pool_assign", "mined", *DOC_ASSETS]
ALL = [a for _, names in LAYERS for a in names]
ORDER = [a for a in ALL if a not in REPORTS + OPTIONAL]  # the curation stages, with counts


class NothingIngested(ValueError):
    """``run`` before any ingest: there is no shard to materialize."""


def _plan(select, shards, recipes, store, missing_only, specs=None, minings=None,
          doc_shards=None, pool_shards=None) -> list[tuple[list[str], list]]:
    """(assets, partition keys) per layer, in order. With ``missing_only`` a partition is
    skipped only when every chosen asset has its commit record (written last, only when its
    checks pass): an interrupted or failed partition is recomputed even if Dagster recorded a
    materialization for some of its assets."""
    steps = []
    for kind, names in LAYERS:
        chosen = [n for n in names if n in select]
        if not chosen:
            continue
        keys = {"shards": shards, "recipes": recipes or [], "synthetic": specs or [],
                "mining": minings or [], "global": [None]}.get(kind)
        if kind == "pool_shards":  # default: every shard of every registered pool
            from mm_assets.core.mine.pool import all_partition_keys

            keys = all_partition_keys(store) if pool_shards is None else pool_shards
        if kind == "semdedup_ranges":  # planned by the layer before: resolved when it starts
            keys = _range_keys(store, missing_only)
        if kind == "doc_shards":  # resolved when it starts (doc_repeats may withdraw commits)
            keys = doc_layer_keys(store, chosen, doc_shards or [], missing_only)
        if missing_only and kind not in ("global", "semdedup_ranges", "doc_shards"):
            keys = _fresh_keys(store, chosen, keys)
            if not {"curated", "pool_assign", "mined"} & set(chosen):
                keys = keys()  # nothing of theirs goes stale: resolved now
        steps.append((chosen, keys))
    return steps


def _fresh_keys(store, chosen: list[str], keys: list[str]) -> Callable[[], list[str]]:
    """``keys`` less those every chosen asset committed against the current versions of its
    global inputs, read when the layer starts: the global layers before it in the same call
    may change those inputs (new exact-duplicate / SemDeDup / decile tables, re-clustered
    centroids). A curated shard curated against older global tables
    (:func:`mm_assets.assets.curated.stale_curated`), a pool shard assigned against older
    centroids (:func:`mm_assets.core.mine.pool_shard.stale_shards`) and a mining recipe
    mined against them (:func:`~mm_assets.core.mine.pool_shard.stale_mined`) are not done."""
    def resolve() -> list[str]:
        from mm_assets.core.commits import read_commits

        done = set.intersection(*(set(read_commits(store, n)) for n in chosen))
        if "curated" in chosen:  # curated against older global decisions
            from mm_assets.assets.curated import stale_curated

            done -= set(stale_curated(store))
        if {"pool_assign", "mined"} & set(chosen):  # built against older centroids
            from mm_assets.core.mine.pool import partition_key, pool_names
            from mm_assets.core.mine.pool_shard import (
                centroids_digest,
                stale_mined,
                stale_shards,
            )

            now = centroids_digest(store)  # hashed once, not per pool or recipe
            if "pool_assign" in chosen:
                done -= {partition_key(p, s) for p in pool_names(store)
                         for s in stale_shards(store, p, now)}
            if "mined" in chosen:
                done -= {k for k in done if stale_mined(store, k, now)}
        return [k for k in keys if k not in done]
    return resolve


def _range_keys(store, missing_only: bool) -> Callable[[], list[str]]:
    """The current SemDeDup plan's range partitions, read when their layer starts (after
    ``semdedup_plan`` when this call runs it); with ``missing_only`` only those without a
    commit record.

    Raises (when the layer starts):
        NothingIngested: no valid plan in the root (``semdedup_plan`` not materialized, or
            withdrawn by a re-clustering): names the asset to run instead of running nothing.
    """
    def keys() -> list[str]:
        from mm_assets.core.commits import read_commits
        from mm_assets.core.semantic.semdedup_plan import RangePlanError, read_plan

        try:
            planned = read_plan(store).keys()
        except RangePlanError as e:
            raise NothingIngested(f"no SemDeDup range plan to run semdedup_range on ({e}); "
                                  "materialize it first: mm-assets run --select "
                                  "semdedup_plan") from e
        done = set(read_commits(store, "semdedup_range")) if missing_only else set()
        return [k for k in planned if k not in done]
    return keys


RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def _batches(keys: list[str], order: list[str], size: int) -> list:
    """Shard keys grouped into runs of at most ``size`` keys that are consecutive in the
    partitions' order (a Dagster partition range must be contiguous); a group of two or more
    is a tuple, a lone key stays a string. ``size`` ≤ 1: one run per key, as given."""
    if size <= 1:
        return list(keys)
    pos = {k: i for i, k in enumerate(order)}
    out: list[list[str]] = []
    for k in sorted(keys, key=lambda k: pos.get(k, len(pos))):
        if out and len(out[-1]) < size and k in pos and out[-1][-1] in pos \
                and pos[k] == pos[out[-1][-1]] + 1:
            out[-1].append(k)
        else:
            out.append([k])
    return [g[0] if len(g) == 1 else tuple(g) for g in out]


def _batched(steps: list[tuple[list[str], list]], order: list[str], size: int
             ) -> list[tuple[list[str], list]]:
    """``steps`` with the keys of the shard layers grouped by :func:`_batches`."""
    shard_assets = {n for kind, names in LAYERS if kind == "shards" for n in names}

    def lazy(keys, in_order):  # keys known when the layer starts: batched once known
        def batches():
            planned = keys()  # range partitions: in plan order; shards: in ``order``
            return _batches(planned, planned if in_order is None else in_order, size)
        return batches

    def batched(chosen, keys):
        if chosen == ["semdedup_range"]:  # always resolved when its layer starts
            return lazy(keys, None)
        if not set(chosen) <= shard_assets:  # recipes, specs, pools, documents, global
            return keys
        return lazy(keys, order) if callable(keys) else _batches(keys, order, size)
    return [(chosen, batched(chosen, keys)) for chosen, keys in steps]


def _label(chosen: list[str], key) -> str:
    if isinstance(key, tuple):
        return f"{'+'.join(chosen)} [{key[0]}..{key[-1]}: {len(key)} shards]"
    return f"{'+'.join(chosen)}" + (f" [{key}]" if key else "")
