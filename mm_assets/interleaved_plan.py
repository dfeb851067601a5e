"""Interleaved documents inside ``mm-assets run`` / ``demo`` / ``status``: which doc shards a
run covers, and which of them ``--missing`` still has to build.

The document layers (:data:`mm_assets.runner.LAYERS`, kinds ``doc_shards`` and ``global``)
run only when the root has ingested documents (``mm-assets interleaved ingest``): a root with
conversations only runs as before. Doc shards are partitions of ``doc_shards``; a doc shard
counts when it is registered in the instance *and* has a manifest in the root.
"""

from __future__ import annotations

from collections.abc import Callable

from dagster import DagsterInstance

from mm_assets.core import layout
from mm_assets.core.storage import Store

#: document assets in run order: per doc shard, global, per doc shard
DOC_LAYERS = [("doc_shards", ["interleaved_docs", "doc_hashes", "doc_quality",
                              "doc_embeddings"]),
              ("global", ["doc_repeats", "doc_clusters"]),
              ("doc_shards", ["docs_curated"])]
DOC_ASSETS = [a for _, names in DOC_LAYERS for a in names]
DOC_PER_SHARD = [a for kind, names in DOC_LAYERS if kind == "doc_shards" for a in names]


def root_doc_shards(store: Store) -> list[str]:
    """Doc shard ids ingested into the root (those with a ``doc_inputs/{shard}.json``; not
    the ingest state ``_state.json``)."""
    return [s for s in layout.shard_ids(store, layout.DOC_INPUTS, layout.DOC_MANIFEST_SUFFIX)
            if not s.startswith("_")]


def known_doc_shards(instance: DagsterInstance, store: Store) -> list[str]:
    """Doc shards both registered in ``instance`` and ingested into the root, sorted."""
    have = set(root_doc_shards(store))
    return sorted(k for k in instance.get_dynamic_partitions("doc_shards") if k in have)


def doc_layer_keys(store: Store, chosen: list[str], keys: list[str], missing_only: bool
                   ) -> Callable[[], list[str]]:
    """The doc shards of one per-doc-shard layer, resolved when the layer starts (a
    ``doc_repeats`` that changed in this very run has withdrawn the docs_curated commits by
    then). With ``missing_only`` a doc shard is skipped only when every asset of ``chosen``
    has its commit record."""
    def resolve() -> list[str]:
        if not missing_only:
            return list(keys)
        from mm_assets.core.commits import read_commits

        done = set.intersection(*(set(read_commits(store, n)) for n in chosen))
        return [k for k in keys if k not in done]
    return resolve
