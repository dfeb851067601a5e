"""``mm-assets ingest --force``: what a re-ingested shard invalidates, read from the asset graph.

:func:`downstream` walks the Dagster asset graph from ``raw_shards`` (the first asset reading
the manifests) and sorts every asset downstream of it into
:class:`~mm_assets.core.ingest.reingest.Downstream`: per-shard assets (their records of the
replaced shards are withdrawn) and the rest (every record withdrawn), except

- ``pool_assign`` (per external pool shard): an assignment made against older centroids is
  already found stale by ``run --missing`` (:func:`mm_assets.core.mine.pool_shard.stale_shards`)
  once clusters are recomputed, so the pool images are not embedded again for nothing;
- ``eval_results`` and ``ablations``: recorded results of trainings that happened, keyed by the
  mixture's content digest (append-only history, not recomputable).
"""

from __future__ import annotations

import functools

from mm_assets.core.ingest.reingest import Downstream

KEEP = ("pool_assign", "eval_results", "ablations")


@functools.lru_cache(maxsize=1)
def downstream() -> Downstream:
    """The commit records a re-ingested shard invalidates (see the module doc)."""
    from dagster import AssetSelection

    from mm_assets.definitions import defs
    from mm_assets.partitions import shards

    graph = defs.resolve_asset_graph()
    per_shard, other = [], []
    for key in AssetSelection.assets("raw_shards").downstream().resolve(graph):
        name = key.to_user_string()
        if name in KEEP:
            continue
        pdef = graph.get(key).partitions_def
        (per_shard if getattr(pdef, "name", None) == shards.name else other).append(name)
    return Downstream(tuple(sorted(per_shard)), tuple(sorted(other)))
