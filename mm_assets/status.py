"""``mm-assets status``: per asset, materialized / missing / failed partitions of one root.

The root says what exists (its ingested shards, ``inputs/*.jsonl``; its recipes and built
mixtures); the Dagster instance (``$DAGSTER_HOME``) says what was materialized or failed.
Interleaved-document assets count a partition as materialized only when it has its commit
record (:func:`doc_status`): a docs_curated shard withdrawn by a changed doc_repeats is missing.
"""

from __future__ import annotations

from dataclasses import dataclass

from dagster import AssetKey, AssetPartitionStatus, DagsterInstance, DagsterRunStatus

from mm_assets.core import layout
from mm_assets.core.mix.registry import root_recipes
from mm_assets.core.storage import Store
from mm_assets.core.synth.spec import root_specs
from mm_assets.interleaved_plan import DOC_ASSETS, DOC_PER_SHARD, root_doc_shards
from mm_assets.partitions import doc_shards as doc_shards_def
from mm_assets.partitions import mining as mining_def
from mm_assets.partitions import pool_shards as pool_shards_def
from mm_assets.partitions import recipes as recipes_def
from mm_assets.partitions import shards as shards_def
from mm_assets.partitions import synthetic_specs as synthetic_def

PER_SHARD = ("raw_shards", "image_hashes", "embeddings", "ppl_scores", "text_quality",
             "curated")


@dataclass(slots=True)
class AssetStatus:
    """Partitions of one asset: ``total`` known in the root, ``done`` materialized, ``failed``
    (latest attempt failed), ``failed_keys`` the first few failed partition keys."""

    asset: str
    total: int
    done: int
    failed: int
    failed_keys: list[str]


GLOBAL_FOLDER = {"report": layout.REPORTS}  # global assets whose folder is not their name


def root_partitions(store: Store) -> dict[str, list[str]]:
    """Shard ids ingested into the root and the root's recipes (its own and built ones)."""
    shards = layout.shard_ids(store, layout.INPUTS, layout.MANIFEST_SUFFIX)
    built = [n for n in store.ls(layout.MIXTURES) if "." not in n]
    rendered = [n for n in store.ls(layout.SYNTHETIC) if "." not in n]
    from mm_assets.core.mine.recipe import root_mining_recipes

    mined = [n for n in store.ls(layout.MINED) if "." not in n]
    return {"shards": shards, "recipes": sorted(set(root_recipes(store)) | set(built)),
            "synthetic": sorted(set(root_specs(store)) | set(rendered)),
            "pool_shards": _pool_shards(store),
            "mining": sorted(set(root_mining_recipes(store)) | set(mined))}


def _pool_shards(store: Store) -> list[str]:
    """``pool_shards`` keys of the registered pools' shards (a pool whose prefix cannot be
    listed now counts its committed shards only)."""
    from mm_assets.core.commits import read_commits
    from mm_assets.core.mine.pool import PoolError, load_pool, partition_key, pool_names

    keys = set(read_commits(store, "pool_assign"))
    for name in pool_names(store):
        try:
            keys |= {partition_key(name, s) for s in load_pool(store, name).shards()}
        except PoolError:
            pass
    return sorted(keys)


def _global_failed(instance: DagsterInstance, key: AssetKey) -> bool:
    """Whether the latest run planned to materialize ``key`` failed without materializing it."""
    info = instance.get_latest_planned_materialization_info(key)
    if info is None:
        return False
    run = instance.get_run_by_id(info.run_id)
    ev = instance.get_latest_materialization_event(key)
    return bool(run and run.status == DagsterRunStatus.FAILURE
                and (ev is None or ev.run_id != info.run_id))


def asset_statuses(instance: DagsterInstance, store: Store, order: list[str]
                   ) -> list[AssetStatus]:
    """One :class:`AssetStatus` per asset of ``order`` for the partitions of ``store``."""
    parts = root_partitions(store)
    known = {k: set(instance.get_dynamic_partitions(k))
             for k in ("shards", "recipes", "synthetic", "pool_shards", "mining")}
    by_asset = {"mixtures": ("recipes", recipes_def), "synthetic": ("synthetic", synthetic_def),
                "synthetic_checked": ("synthetic", synthetic_def),
                "pool_assign": ("pool_shards", pool_shards_def),
                "mined": ("mining", mining_def)}
    out = []
    for a in order:
        key = AssetKey(a)
        if a in DOC_ASSETS:
            out.append(doc_status(instance, store, a))
            continue
        if a in ("semdedup_plan", "semdedup_range"):
            out.append(range_status(instance, store, a))
            continue
        if a in PER_SHARD or a in by_asset:
            kind, pdef = by_asset.get(a, ("shards", shards_def))
            keys = [k for k in parts[kind] if k in known[kind]]  # unregistered: never run
            st = instance.get_status_by_partition(key, keys, pdef) or {} if keys else {}
            bad = sorted(k for k, v in st.items() if v == AssetPartitionStatus.FAILED)
            mat = {k for k, v in st.items() if v == AssetPartitionStatus.MATERIALIZED}
            if a in PER_SHARD:  # and still committed (ingest --force withdraws records)
                from mm_assets.core.commits import read_commits

                mat &= set(read_commits(store, a))
            out.append(AssetStatus(a, len(parts[kind]), len(mat), len(bad), bad[:5]))
        else:
            done = (instance.get_latest_materialization_event(key) is not None
                    and bool(store.ls(GLOBAL_FOLDER.get(a, a))))  # the instance may serve
            # several roots: the root must hold the asset's output too
            failed = _global_failed(instance, key)
            out.append(AssetStatus(a, 1, int(done), int(failed), ["global"] if failed else []))
    return out


def doc_status(instance: DagsterInstance, store: Store, asset: str) -> AssetStatus:
    """Status of one interleaved-document asset from the commit records: per doc shard of the
    root (``doc_shards`` partitions) for the per-shard ones, one partition for the global ones
    (none when the root has no doc shard); ``failed``: the latest attempt failed and the
    partition has no commit record."""
    from mm_assets.core.commits import GLOBAL, read_commit, read_commits

    shards = root_doc_shards(store)
    key = AssetKey(asset)
    if asset not in DOC_PER_SHARD:
        if not shards:
            return AssetStatus(asset, 0, 0, 0, [])
        done = read_commit(store, asset, GLOBAL) is not None
        failed = not done and _global_failed(instance, key)
        return AssetStatus(asset, 1, int(done), int(failed), ["global"] if failed else [])
    done = set(read_commits(store, asset)) & set(shards)
    registered = set(instance.get_dynamic_partitions(doc_shards_def.name))
    keys = [k for k in shards if k in registered and k not in done]
    st = instance.get_status_by_partition(key, keys, doc_shards_def) or {} if keys else {}
    bad = sorted(k for k, v in st.items() if v == AssetPartitionStatus.FAILED)
    return AssetStatus(asset, len(shards), len(done), len(bad), bad[:5])


def range_status(instance: DagsterInstance, store: Store, asset: str) -> AssetStatus:
    """``semdedup_plan``: one partition, done while its plan is valid (a re-clustering
    withdraws it); ``semdedup_range``: one partition per range of the current plan, done when
    committed (none without a plan)."""
    from mm_assets.core.commits import read_commits
    from mm_assets.core.semantic.semdedup_plan import RangePlanError, read_plan

    try:
        planned = list(read_plan(store).keys())
    except RangePlanError:
        planned = None
    if asset == "semdedup_plan":
        failed = planned is None and _global_failed(instance, AssetKey(asset))
        return AssetStatus(asset, 1, int(planned is not None), int(failed),
                           ["global"] if failed else [])
    planned = planned or []
    done = set(read_commits(store, asset)) & set(planned)
    return AssetStatus(asset, len(planned), len(done), 0, [])
