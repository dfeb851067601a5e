"""``pool_assign`` for one partition: resolve the shard, run it, write its outputs.

Outputs of partition ``{pool}__{stem}`` (paths: :mod:`mm_assets.core.layout`), each written
atomically, in this order, and the commit record last (by the asset):

- ``pools/{pool}/{stem}.npy``      (N, D) float16 L2-normalised vectors, row i = ``row`` i
- ``pools/{pool}/{stem}.parquet``  :data:`~mm_assets.core.schemas.POOL_ASSIGN`
- ``quarantine/pool_assign/{pool}__{stem}.parquet``  unusable samples with reasons
- ``pools/{pool}/{stem}.json``     sidecar: the encoder identity and fingerprint
  (:mod:`.pool_encoder`), the centroids file's xxh3-128 digest, K, D and N, so a mining
  step can refuse shards assigned against older centroids (:func:`stale_shards`).

No output carries a timestamp: a re-run on the same inputs rewrites the same bytes.
"""

from __future__ import annotations

import json

import numpy as np
import polars as pl

from mm_assets.core import layout, schemas
from mm_assets.core.commits import file_digest, read_commits
from mm_assets.core.mine import STAGE
from mm_assets.core.mine.assign import AssignConfig, centroid_index, process_pool_shard
from mm_assets.core.mine.pool import partition_key, shard_url, split_partition_key
from mm_assets.core.records import StageCounts
from mm_assets.core.storage import Store

CENTROIDS = layout.centroids("image")


def load_centroids(store: Store, device: str = "cpu") -> tuple[object, dict]:
    """FAISS index of the corpus image centroids and their description
    ``{path, digest, k, dim}``.

    Raises:
        FileNotFoundError: ``clusters`` was not materialized (no image centroids).
    """
    if not store.exists(CENTROIDS):
        raise FileNotFoundError(f"no corpus image centroids at {store.url(CENTROIDS)}: "
                                "materialize clusters before pool_assign")
    cents = np.asarray(store.read_npy(CENTROIDS), dtype=np.float32)
    index = centroid_index(cents, device)
    return index, {"path": CENTROIDS, "digest": file_digest(store, CENTROIDS),
                   "k": int(cents.shape[0]), "dim": int(cents.shape[1])}


def run_pool_shard(store: Store, key: str, encoder, index, centroids: dict, identity: dict,
                   cfg: AssignConfig, batch_size: int = 32, num_workers: int = 0,
                   draft: bool = True) -> tuple[StageCounts, dict]:
    """Process partition ``key`` (``{pool}__{stem}``) and write its outputs.

    Args:
        store: storage root.
        key: the ``pool_shards`` partition key.
        encoder: the corpus image encoder; ``identity`` its checked identity
            (:func:`~mm_assets.core.mine.pool_encoder.check_pool_encoder`).
        index, centroids: from :func:`load_centroids`.
        cfg, batch_size, num_workers, draft: see
            :func:`~mm_assets.core.mine.assign.process_pool_shard`.

    Returns:
        ``(counts, metadata)`` for :func:`mm_assets.assets._common.per_shard`.

    Raises:
        mm_assets.core.mine.pool.PoolError: unknown pool or shard.
    """
    pool, stem = split_partition_key(key)
    url = shard_url(store, pool, stem)
    res = process_pool_shard(url, pool, stem, encoder, index, cfg, batch_size, num_workers,
                             draft)
    store.write_npy(layout.pool_vectors(pool, stem), res.vectors)
    store.write_table(layout.pool_assign(pool, stem), res.table, schemas.POOL_ASSIGN)
    store.write_table(layout.quarantine(STAGE, key), pl.DataFrame(
        [q.as_row() for q in res.quarantined], schema=schemas.QUARANTINE), schemas.QUARANTINE)
    sidecar = {"pool": pool, "shard": stem, "url": url, "rows": res.table.height,
               "dim": int(res.vectors.shape[1]), "encoder": identity, "centroids": centroids}
    store.write_bytes(layout.pool_sidecar(pool, stem),
                      json.dumps(sidecar, indent=1, sort_keys=True).encode())
    n = max(res.table.height, 1)
    sims = res.table["sim"]
    meta = {"pool": pool, "shard": stem, "url": url, "rows": res.table.height,
            "clusters_hit": int(res.table["cluster"].n_unique()) if res.table.height else 0,
            "mean_sim": round(float(sims.mean()), 4) if res.table.height else None,
            "mean_margin": (round(float((sims - res.table["sim2"]).mean()), 4)
                            if res.table.height and centroids["k"] > 1 else None),
            "encoder": identity["model"], "encoder_weights_sha256": identity["weights_sha256"],
            "encoder_fingerprint": identity["fingerprint"],
            "centroids_digest": centroids["digest"],
            **res.seconds,
            "s_per_1k_images": round(1000 * sum(res.seconds.values()) / n, 3),
            "vectors": store.url(layout.pool_vectors(pool, stem))}
    return res.counts, meta


def read_sidecar(store: Store, pool: str, stem: str) -> dict:
    """The sidecar of one assigned pool shard (see module doc)."""
    return json.loads(store.read_bytes(layout.pool_sidecar(pool, stem)))


def assigned_shards(store: Store, pool: str) -> list[str]:
    """Stems of ``pool``'s shards with a ``pool_assign`` commit record, sorted."""
    prefix = partition_key(pool, "")
    return [k[len(prefix):] for k in read_commits(store, STAGE) if k.startswith(prefix)]


def centroids_digest(store: Store) -> str | None:
    """xxh3-128 hex digest of the current ``clusters/centroids_image.npy`` (reads it once,
    ≈ K·D·4 bytes), or None when clusters was never materialized."""
    return file_digest(store, CENTROIDS) if store.exists(CENTROIDS) else None


def stale_mined(store: Store, recipe: str, now: str | None = None) -> bool:
    """Whether the committed ``mined`` partition of mining recipe ``recipe`` was selected
    against other centroids than the current ones (its commit record's
    ``inputs.centroids``; a record without it counts as stale): its samples carry cluster
    ids of superseded clusters. False when the recipe has no committed partition. ``now``:
    the current :func:`centroids_digest` when the caller has it (hashing the centroids costs
    ≈ K·D·4 bytes of reading), else computed here."""
    from mm_assets.core.commits import input_version, read_commit

    rec = read_commit(store, "mined", recipe)
    if rec is None:
        return False
    return input_version(rec, "centroids") != (now or centroids_digest(store))


def stale_shards(store: Store, pool: str, now: str | None = None) -> list[str]:
    """Committed shards of ``pool`` assigned against other centroids than the current
    ``clusters/centroids_image.npy`` (re-materialize pool_assign for them). ``now`` as for
    :func:`stale_mined`."""
    now = now or centroids_digest(store)
    if now is None:
        return assigned_shards(store, pool)
    return [s for s in assigned_shards(store, pool)
            if read_sidecar(store, pool, s)["centroids"]["digest"] != now]


SPANS = schemas.subset(schemas.POOL_ASSIGN, "span_start", "span_end")


def read_assign_table(store: Store, pool: str, stem: str, schema: dict) -> pl.DataFrame:
    """The ``schema`` columns (a subset of :data:`~mm_assets.core.schemas.POOL_ASSIGN`) of one
    shard's assignment table. A table written before byte spans were recorded gets null
    ``span_start`` / ``span_end`` (``mined`` then scans that pool shard; re-materialize
    pool_assign to record them).

    Raises:
        mm_assets.core.schemas.SchemaError: a column is missing (spans excepted) or of another
            dtype.
    """
    rel = layout.pool_assign(pool, stem)
    df = store.read_table(rel, {c: t for c, t in schema.items() if c not in SPANS})
    have = {c: t for c, t in SPANS.items() if c in schema and c in df.columns}
    schemas.check_schema(have, df.schema, store.url(rel))
    missing = [pl.lit(None, t).alias(c) for c, t in SPANS.items()
               if c in schema and c not in have]
    return df.with_columns(missing).select(list(schema))
