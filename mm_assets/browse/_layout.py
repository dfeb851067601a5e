"""Storage paths the browser reads, from :mod:`mm_assets.core.layout` (its owner): per-shard
paths and listings as there, global tables as zero-argument functions (``REQUIRES`` in
:mod:`mm_assets.browse.select` holds them unevaluated)."""

from __future__ import annotations

from mm_assets.core import layout as _core
from mm_assets.core.layout import (  # noqa: F401  (re-exported)
    curated_decision_files,
    curated_decisions,
    image_hashes,
    ppl_scores,
    raw_shard,
    raw_shard_ids,
    text_quality,
)


def quarantine_files(store) -> list[tuple[str, str]]:
    """``(shard, path)`` of the quarantine tables of the corpus stages only (a pool's,
    documents' or recipe's quarantine partitions are no corpus shard to read samples from)."""
    return _core.quarantine_files(store, _core.CORPUS_QUARANTINE_STAGES)


def text_quality_files(store) -> list[tuple[str, str]]:
    """``(shard, path)`` of every text_quality table."""
    return [(s, text_quality(s)) for s in _core.shard_ids(store, _core.TEXT_QUALITY,
                                                         _core.PARQUET)]


def exact_groups() -> str:
    return _core.EXACT_GROUPS


def near_groups() -> str:
    return _core.NEAR_GROUPS


def cluster_assignments() -> str:
    return _core.CLUSTER_ASSIGNMENTS


def semdedup_scores() -> str:
    return _core.SEMDEDUP_SCORES


def ppl_deciles() -> str:
    return _core.PPL_DECILES_TABLE


def shard_rel(shard: str) -> str:
    """Path of a shard the browser reads: a raw shard id (``000123``), or the path of a
    synthetic shard (``synthetic/{spec}/{i}.tar``, as :func:`synthetic_shards` gives)."""
    return shard if shard.endswith(_core.TAR) else raw_shard(shard)


def synthetic_spec_names(store) -> list[str]:
    """Specs with rendered shards (folders under ``synthetic/``), sorted."""
    return [n for n in store.ls(_core.SYNTHETIC) if not n.endswith(".yaml")
            and store.ls(_core.synthetic_dir(n), _core.TAR)]


def synthetic_shards(store, spec: str) -> list[str]:
    """Paths of the shards of one synthetic spec, sorted."""
    d = _core.synthetic_dir(spec)
    return [f"{d}/{n}" for n in store.ls(d, _core.TAR)]
