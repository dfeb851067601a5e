"""curated (per shard): dedup and quality decisions applied, every removal with its reason."""

import polars as pl
from dagster import AutomationCondition, MaterializeResult, asset

from mm_assets.assets._common import (
    per_shard,
    read_shard,
    upstream_shards,
    write_shard,
)
from mm_assets.checks import counts_spec, upstream_spec
from mm_assets.config import dagster_config
from mm_assets.core import layout, schemas
from mm_assets.core.commits import (
    GLOBAL,
    UncommittedError,
    input_version,
    outputs_fingerprint,
    read_commit,
    read_commits,
)
from mm_assets.core.curate.decide import CurateConfig, apply, decide
from mm_assets.core.curate.index import build_index, decision_inputs, tables_fingerprint
from mm_assets.core.storage import Store
from mm_assets.partitions import CURATE_CRON, shard_backfill, shards
from resources.storage import StorageResource

CuratedConfig = dagster_config(CurateConfig, "CuratedConfig")


def shard_text_flags(store: Store, shard: str) -> dict[str, set[str]]:
    """key -> text-quality flags of one shard (empty when text_quality was not materialized)."""
    rel = layout.text_quality(shard)
    if not store.exists(rel):
        return {}
    table = store.read_table(rel, FLAGS).group_by("key").agg(pl.col("flag").unique())
    return {k: set(v) for k, v in table.iter_rows()}


FLAGS = schemas.subset(schemas.TEXT_QUALITY, "key", "flag")
KEYS = schemas.subset(schemas.IMAGE_HASHES, "key")
GLOBAL_INPUTS = ["exact_duplicates", "semdedup", "ppl_deciles"]
TABLES = [layout.EXACT_GROUPS, layout.SEMDEDUP_SCORES, layout.PPL_DECILES_TABLE]
TABLE_SCHEMAS = [schemas.subset(schemas.EXACT_GROUPS, "key", "representative", "action"),
                 schemas.subset(schemas.SEMDEDUP_SCORES, "key", "duplicate"),
                 schemas.subset(schemas.PPL_DECILES, "key", "decile")]


def index_fingerprint(store: Store) -> str:
    """Fingerprint of the global tables' version, after checking each is committed."""
    for up in GLOBAL_INPUTS:  # a clear line instead of a missing-file error
        if read_commit(store, up, GLOBAL) is None:
            raise UncommittedError(f"{up} is not materialized in {store.url('')} (no commit "
                                   f"record): materialize {up} before curated")
    return (outputs_fingerprint(store, GLOBAL_INPUTS)
            or tables_fingerprint(store, TABLES))  # content digests from the commit records


def stale_curated(store: Store) -> list[str]:
    """Sorted committed curated shards curated against another version of the global tables
    than the current one (their commit record's ``inputs.index_fingerprint``; a record without
    one is stale too). Empty when a global input is not committed (curated then fails with its
    own message). Reads one small JSON per committed shard.

    A curated shard applies the global decisions (exact duplicates, SemDeDup, perplexity
    deciles) as they were when it ran: after those tables change (new input, other epsilon) it
    is stale until re-curated."""
    try:
        fp = index_fingerprint(store)
    except UncommittedError:
        return []
    return [k for k, rec in read_commits(store, "curated").items()
            if input_version(rec, "index_fingerprint") != fp]


def require_current_curated(store: Store) -> None:
    """Refuse to read curated shards applying superseded global decisions.

    Raises:
        UncommittedError: a committed curated shard is stale (:func:`stale_curated`); names the
            shards and the command that re-curates them.
    """
    stale = stale_curated(store)
    if stale:
        raise UncommittedError(
            f"{len(stale)} curated shard(s) ({', '.join(stale[:5])}"
            f"{', …' if len(stale) > 5 else ''}) were curated against older global decisions "
            "(exact_duplicates / semdedup / ppl_deciles changed since): re-curate them first: "
            "mm-assets run --select curated --missing")


def build_shard_index(store: Store, fp: str, shards: list[str]) -> None:
    """Write ``curated/_index/{fp}/{shard}`` for every hashed shard unless those of
    ``shards`` exist already (one pass over the global tables: ≈ 100 B per sample of memory);
    indexes of older table versions are removed."""
    if all(store.exists(layout.curated_index(fp, s)) for s in shards):
        return
    names = upstream_shards(store, "image_hashes")
    key_shard = pl.concat([store.read_table(layout.image_hashes(s), KEYS).select(
        "key", pl.lit(s).alias("shard")) for s in names])
    groups, scores, dec = (store.read_table(t, s) for t, s in zip(TABLES, TABLE_SCHEMAS,
                                                                   strict=True))
    parts = build_index(key_shard, groups, scores, dec)
    empty = pl.DataFrame(schema=schemas.CURATED_INDEX)
    for shard in names:  # a shard whose records were all quarantined gets an empty index
        store.write_table(layout.curated_index(fp, shard), parts.get(shard, empty),
                          schemas.CURATED_INDEX)
    for old in store.ls(layout.CURATED_INDEXES):  # indexes of older table versions
        if old != fp:
            store.rm(layout.curated_index_dir(old))


def read_index(store: Store, fp: str, shard: str):
    """Decision inputs of one shard from index version ``fp`` (:func:`build_shard_index`).

    Raises:
        FileNotFoundError: the shard has no index row file (never hashed).
    """
    rel = layout.curated_index(fp, shard)
    if not store.exists(rel):
        raise FileNotFoundError(f"no image_hashes for shard {shard}: materialize it first")
    return decision_inputs(store.read_table(rel, schemas.CURATED_INDEX))


def curate_shard(shard: str, store: Store, cfg: CurateConfig, fp: str):
    """Curate one shard from its index rows (a worker-process function): ``curated/{shard}.tar``
    + its decisions; returns (counts, metadata)."""
    samples = read_shard(store, layout.RAW_SHARDS, shard)
    exact, semdup, deciles = read_index(store, fp, shard)
    decisions = decide([s.key for s in samples], exact, semdup, deciles, cfg,
                       shard_text_flags(store, shard))
    kept, counts = apply(samples, decisions)
    for s in kept:
        s.metadata["ppl_decile"] = int(deciles.get(s.key, -1))
    store.write_table(layout.curated_decisions(shard), decisions, schemas.CURATED_DECISIONS)
    write_shard(store, layout.curated_shard(shard), kept)
    return counts, {"path": store.url(layout.curated_shard(shard)),
                    "text_filters": ", ".join(cfg.text_filters)}


@asset(partitions_def=shards, backfill_policy=shard_backfill,
       deps=["raw_shards", "exact_duplicates", "semdedup", "ppl_deciles", "text_quality"],
       group_name="curate",
       check_specs=[counts_spec("curated"), upstream_spec("curated")],
       kinds={"webdataset"},
       automation_condition=AutomationCondition.on_cron(CURATE_CRON))
def curated(context, config: CuratedConfig, storage: StorageResource) -> MaterializeResult:
    """``curated/{shard}.tar`` (kept samples, with ``ppl_decile`` in metadata) and
    ``curated/{shard}.decisions.parquet`` (every key: kept / removed + reason). Reads only
    its shard's rows of the global tables (``curated/_index/{tables fingerprint}/{shard}``,
    built by the first run after those tables change), so a run's cost is flat in corpus size.
    Each shard's commit record keeps that fingerprint (``inputs.index_fingerprint``): a shard
    curated against older tables is stale (:func:`stale_curated`), re-run by ``run --missing``
    and refused by ``merged``.
    A batched run's shards are curated in ``workers`` processes (0 = one per core)."""
    store, cfg = storage.store(), config.core()
    fp = index_fingerprint(store)
    build_shard_index(store, fp, list(context.partition_keys))
    return per_shard(context, "curated", curate_shard, store, cfg, fp, workers=cfg.workers,
                     upstream="raw_shards", inputs={"index_fingerprint": fp})
