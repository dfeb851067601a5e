"""Interleaved documents (group ``interleaved``), one partition per doc shard (``doc_shards``):

interleaved_docs -> doc_hashes -> doc_repeats (global) -> docs_curated; doc_quality;
doc_embeddings -> doc_clusters (global).
"""

from collections import Counter

import numpy as np
import polars as pl
from dagster import MaterializeResult, MetadataValue, asset

from mm_assets.assets._common import global_result, md_table, per_shard, write_quarantine
from mm_assets.checks import counts_spec, extra_counts_spec, upstream_spec
from mm_assets.config import dagster_config
from mm_assets.core import layout, schemas
from mm_assets.core.commits import (
    GLOBAL,
    UncommittedError,
    committed,
    read_commit,
    read_commits,
    uncommit,
)
from mm_assets.core.interleaved import repeated as rep
from mm_assets.core.interleaved.embed import doc_segment, embed_doc_images
from mm_assets.core.interleaved.hashes import hash_docs
from mm_assets.core.interleaved.ingest import DocIngestConfig, build_doc_shard, image_counts
from mm_assets.core.interleaved.quality import flag_docs, ppl_docs
from mm_assets.core.interleaved.shards import read_docs, write_docs
from mm_assets.core.quality.ppl import PplConfig
from mm_assets.core.quality.text_flags import TextQualityConfig
from mm_assets.core.records import StageCounts
from mm_assets.core.semantic.cluster import ClusterConfig, spherical_kmeans
from mm_assets.core.semantic.embed_cache import MAX_PIXELS, ImageEmbeddingStore, encoder_fingerprint
from mm_assets.core.storage import Store
from mm_assets.partitions import GPU_POOL, GPU_TAGS, doc_shards, shard_backfill
from resources.models import EmbedderResource, LanguageModelResource
from resources.storage import StorageResource

GROUP = "interleaved"
DOCS, HASHES, REPEATS, CURATED, QUALITY = ("interleaved_docs", "doc_hashes", "doc_repeats",
                                           "docs_curated", "doc_quality")
EMBED, CLUSTERS = "doc_embeddings", "doc_clusters"
IMAGES = "images"  # the second unit counted by interleaved_docs, doc_hashes, docs_curated
DocsConfig = dagster_config(DocIngestConfig, "InterleavedDocsConfig", include=("max_pixels",))
RepeatsConfig = dagster_config(rep.RepeatConfig, "DocRepeatsConfig")
DocQualityConfig = dagster_config(TextQualityConfig, "DocQualityConfig")
DocClustersConfig = dagster_config(ClusterConfig, "DocClustersConfig")


def _docs(store: Store, shard: str) -> list:
    with store.open_read(layout.doc_shard(shard)) as f:
        return list(read_docs(f))


def docs_shard(shard: str, store: Store, max_pixels: int
               ) -> tuple[StageCounts, dict, dict[str, StageCounts]]:
    counts, quarantine, images = build_doc_shard(store, shard, max_pixels)
    write_quarantine(store, DOCS, shard, quarantine)
    return counts, {**dict(sorted(images.items())),
                    "path": store.url(layout.doc_shard(shard))}, {IMAGES: image_counts(images)}


@asset(partitions_def=doc_shards, backfill_policy=shard_backfill, group_name=GROUP,
       check_specs=[counts_spec(DOCS), extra_counts_spec(DOCS, IMAGES)], kinds={"webdataset"})
def interleaved_docs(context, config: DocsConfig, storage: StorageResource) -> MaterializeResult:
    """``docs/{shard}.tar``: the shard's documents from its manifest (MINT-1T WebDataset or
    Parquet, OBELICS, mmc4), images validated; bad records in
    ``quarantine/interleaved_docs/{shard}.parquet``. Images are accounted in the commit record
    and the blocking ``images_reconcile`` check: in = with bytes + URL-only (out) + dropped
    per reason (quarantined)."""
    return per_shard(context, DOCS, docs_shard, storage.store(), config.core().max_pixels)


def hashes_shard(shard: str, store: Store, max_pixels: int
                 ) -> tuple[StageCounts, dict, dict[str, StageCounts]]:
    docs = _docs(store, shard)
    images, table = hash_docs(docs, max_pixels)
    store.write_table(layout.doc_image_hashes(shard), images, schemas.DOC_IMAGES)
    store.write_table(layout.doc_hashes(shard), table, schemas.DOC_TABLE)
    return StageCounts(len(docs), table.height), {
        "images": images.height, "url_only": int((~images["has_bytes"]).sum())}, {
        IMAGES: StageCounts(sum(d.n_images for d in docs), images.height)}


@asset(partitions_def=doc_shards, backfill_policy=shard_backfill, deps=[DOCS], group_name=GROUP,
       check_specs=[counts_spec(HASHES), upstream_spec(HASHES, DOCS),
                    extra_counts_spec(HASHES, IMAGES)], kinds={"parquet"})
def doc_hashes(context, config: DocsConfig, storage: StorageResource) -> MaterializeResult:
    """Per image segment: bytes / pixel hash, pHash, size, URL (``doc_hashes/{shard}.parquet``);
    per document: the hash of its ordered segments (``.docs.parquet``). Blocking
    ``images_reconcile``: one row per image interleaved_docs committed."""
    return per_shard(context, HASHES, hashes_shard, storage.store(), config.core().max_pixels,
                     upstream=DOCS)


def committed_doc_shards(store: Store, asset_name: str) -> list[str]:
    """Doc shards ``asset_name`` committed; every shard interleaved_docs committed must be.

    Raises:
        UncommittedError: a committed doc shard lacks ``asset_name`` (or none at all).
    """
    have, want = committed(store, asset_name), committed(store, DOCS)
    missing = sorted(set(want) - set(have))
    if missing or not want:
        raise UncommittedError(f"{asset_name} is not committed for doc shard(s) "
                               f"{', '.join(missing[:5]) or '(none ingested)'}: materialize it")
    return have


@asset(deps=[HASHES], group_name=GROUP, check_specs=[counts_spec(REPEATS)], kinds={"polars"})
def doc_repeats(context, config: RepeatsConfig, storage: StorageResource) -> MaterializeResult:
    """Images repeated across documents (bytes / pHash / URL; ``doc_repeats/images.parquet``,
    ``groups.parquet``) and exact-duplicate documents (``documents.parquet``), with the
    policy's action; the removals split per doc shard (``doc_repeats/shards/{shard}.parquet``,
    what docs_curated reads). Counts are documents: removed = duplicates the policy removes.

    A result that differs from the committed one (output digests) withdraws every
    docs_curated commit: those shards were curated under other decisions, so ``run
    --missing`` recomputes them and mixtures refuse them until then. Memory: the image and
    document rows of the whole corpus (~100 B per image row)."""
    store, cfg = storage.store(), config.core()
    shards = committed_doc_shards(store, HASHES)
    images = pl.concat([store.read_table(layout.doc_image_hashes(s), schemas.DOC_IMAGES)
                        for s in shards])
    docs = pl.concat([store.read_table(layout.doc_hashes(s), schemas.DOC_TABLE)
                      .with_columns(shard=pl.lit(s)) for s in shards])
    rows, groups = rep.repeated_images(images, cfg)
    dups = rep.duplicate_documents(docs.drop("shard"), cfg)
    for rel, df, schema in ((layout.DOC_REPEAT_IMAGES, rows, schemas.DOC_REPEAT_IMAGES),
                            (layout.DOC_REPEAT_GROUPS, groups, schemas.DOC_REPEAT_GROUPS),
                            (layout.DOC_DUPLICATES, dups, schemas.DOC_DUPLICATES)):
        store.write_table(rel, df, schema)
    per = rep.removals_by_shard(rows, dups, docs.select("key", "shard"))
    for s, df in per.items():
        store.write_table(layout.doc_repeats_shard(s), df, schemas.DOC_DECISIONS)
    for name in store.ls(layout.DOC_REPEAT_SHARDS, ".parquet"):  # shards no longer committed
        if name.removesuffix(".parquet") not in per:
            store.rm(layout.entry(layout.DOC_REPEAT_SHARDS, name))
    n_dup = dups.filter(pl.col("action") == rep.REMOVE).height
    counts = StageCounts(docs.height, docs.height - n_dup,
                         removed=Counter({"duplicate_document": n_dup} if n_dup else {}))
    drop = rows.filter(pl.col("action") == rep.DROP)
    before = read_commit(store, REPEATS, GLOBAL)
    result = global_result(store, REPEATS, counts,
                           [layout.DOC_REPEAT_IMAGES, layout.DOC_REPEAT_GROUPS,
                            layout.DOC_DUPLICATES, *map(layout.doc_repeats_shard, per)], {
        "images": images.height, "repeated_groups": groups.height,
        "images_to_drop": drop.height, "docs_with_dropped_images": drop["key"].n_unique(),
        "top_groups": md_table(groups.head(10)), "config": MetadataValue.json(vars(cfg))})
    after = read_commit(store, REPEATS, GLOBAL)
    same = before is not None and after is not None and before["outputs"] == after["outputs"]
    stale = [] if same else list(read_commits(store, CURATED))
    for s in stale:
        uncommit(store, CURATED, s)
    return MaterializeResult(metadata={**result.metadata, "docs_curated_withdrawn": len(stale)},
                             check_results=result.check_results)


def curate_shard(shard: str, store: Store) -> tuple[StageCounts, dict, dict[str, StageCounts]]:
    """Curate one doc shard from its own removals (``doc_repeats/shards/{shard}.parquet``).
    Memory: one shard's documents and removal rows, whatever the corpus size.

    Raises:
        UncommittedError: doc_repeats is not committed, or was built before this shard was.
    """
    rel = layout.doc_repeats_shard(shard)
    if read_commit(store, REPEATS, GLOBAL) is None or not store.exists(rel):
        raise UncommittedError(f"doc_repeats has not decided doc shard {shard}: materialize "
                               "doc_repeats (after doc_hashes of every doc shard) first")
    docs = _docs(store, shard)
    removals = store.read_table(rel, schemas.DOC_DECISIONS)
    drop_pos: dict[str, set[int]] = {}
    for k, p in removals.filter(pl.col("pos") >= 0).select("key", "pos").iter_rows():
        drop_pos.setdefault(k, set()).add(p)
    remove = set(removals.filter(pl.col("pos") < 0)["key"].to_list())
    kept, decisions = [], []
    for d in docs:
        out, rows = rep.apply_policies(d, drop_pos.get(d.key, set()),
                                       "duplicate_document" if d.key in remove else None)
        decisions += rows
        if out is not None:
            kept.append(out)
    with store.open_write(layout.docs_curated_shard(shard)) as f:
        write_docs(f, kept)
    table = pl.DataFrame(decisions, schema=schemas.DOC_DECISIONS)
    store.write_table(layout.docs_curated_decisions(shard), table, schemas.DOC_DECISIONS)
    doc_rows, img_rows = table.filter(pl.col("pos") < 0), table.filter(pl.col("pos") >= 0)
    removed = Counter(doc_rows.filter(pl.col("status") == "removed")["reason"].to_list())
    n_images, n_kept = sum(d.n_images for d in docs), sum(d.n_images for d in kept)
    img_removed = Counter(img_rows["reason"].to_list())
    return StageCounts(len(docs), len(kept), removed=removed), {
        "images_in": n_images, "images_kept": n_kept,
        **{f"images_removed_{r}": n for r, n in sorted(img_removed.items())}}, {
        IMAGES: StageCounts(n_images, n_kept, removed=img_removed)}


@asset(partitions_def=doc_shards, backfill_policy=shard_backfill, deps=[DOCS, REPEATS],
       group_name=GROUP, check_specs=[counts_spec(CURATED), upstream_spec(CURATED, DOCS),
                                      extra_counts_spec(CURATED, IMAGES)],
       kinds={"webdataset"})
def docs_curated(context, storage: StorageResource) -> MaterializeResult:
    """``docs_curated/{shard}.tar``: documents with repeated images removed (order of the other
    segments kept) and duplicate documents removed; ``.decisions.parquet`` per document and
    per removed image with the reason. Blocking ``images_reconcile``: images in (= what
    interleaved_docs committed) = kept + removed per reason."""
    return per_shard(context, CURATED, curate_shard, storage.store(), upstream=DOCS)


@asset(partitions_def=doc_shards, backfill_policy=shard_backfill, deps=[DOCS], group_name=GROUP,
       check_specs=[counts_spec(QUALITY), upstream_spec(QUALITY, DOCS)], kinds={"polars"})
def doc_quality(context, config: DocQualityConfig, storage: StorageResource,
                lm: LanguageModelResource) -> MaterializeResult:
    """Text segments: formatting flags (``doc_quality/{shard}.flags.parquet``; ``turn`` = the
    segment position) and perplexity per segment (``.ppl.parquet``) under the ``lm`` resource
    (a causal LM, or ``kenlm:PATH``)."""
    store, cfg = storage.store(), config.core()
    scorer = lm.ppl_scorer(PplConfig())

    def run(shard: str):
        docs = _docs(store, shard)
        flags = flag_docs(docs, cfg)
        ppl = ppl_docs(docs, scorer.score)
        store.write_table(layout.doc_flags(shard), flags, schemas.TEXT_QUALITY)
        store.write_table(layout.doc_ppl(shard), ppl, schemas.DOC_PPL)
        return StageCounts(len(docs), len(docs)), {
            "segments_scored": int(ppl["ppl"].is_not_null().sum()),
            "segments_unscored": int(ppl["ppl"].is_null().sum()),
            "flags": MetadataValue.json(dict(flags["flag"].value_counts().iter_rows())),
            "median_segment_ppl": float(ppl["ppl"].median() or float("nan")),
            "model": scorer.name}

    return per_shard(context, QUALITY, run, store=store, upstream=DOCS)


@asset(partitions_def=doc_shards, backfill_policy=shard_backfill, deps=[DOCS], group_name=GROUP,
       check_specs=[counts_spec(EMBED), upstream_spec(EMBED, DOCS)], kinds={"pytorch"},
       op_tags=GPU_TAGS, pool=GPU_POOL)
def doc_embeddings(context, storage: StorageResource, embedder: EmbedderResource
                   ) -> MaterializeResult:
    """``doc_embeddings/{shard}.npy`` (M×D float16, L2-normalised) + ``.parquet`` (key, pos):
    one vector per image segment with bytes, by the corpus image encoder, each distinct image
    embedded once (shared per-image store). Counts are documents (all examined)."""
    store, enc = storage.store(), embedder.image_encoder()
    fp = encoder_fingerprint(enc, embedder.jpeg_draft, MAX_PIXELS)
    cache = ImageEmbeddingStore(store, fp, enc.dim)

    def run(shard: str):
        docs = _docs(store, shard)
        keys, vecs, failed = embed_doc_images(docs, enc, cache, doc_segment(shard),
                                              embedder.batch_size, embedder.loader_workers(),
                                              embedder.jpeg_draft)
        store.write_npy(layout.doc_embedding_vectors(shard), vecs)
        store.write_table(layout.doc_embedding_keys(shard), keys, schemas.DOC_EMBEDDING_KEYS)
        return StageCounts(len(docs), len(docs)), {
            "images_embedded": keys.height, "images_failed": sum(failed.values()),
            "url_only_not_embedded": sum(d.n_url_only for d in docs),
            "image_model": enc.name, "encoder_fingerprint": fp}

    return per_shard(context, EMBED, run, store=store, upstream=DOCS)


@asset(deps=[EMBED], group_name=GROUP, check_specs=[counts_spec(CLUSTERS)], kinds={"faiss"})
def doc_clusters(context, config: DocClustersConfig, storage: StorageResource
                 ) -> MaterializeResult:
    """Spherical k-means over every document image vector:
    ``doc_embeddings/clusters/assignments.parquet`` (key, pos, cluster, 1 - cos) and
    ``centroids.npy``. Counts are image vectors (every one assigned)."""
    store, cfg = storage.store(), config.core()
    shards = committed_doc_shards(store, EMBED)
    keys = pl.concat([store.read_table(layout.doc_embedding_keys(s), schemas.DOC_EMBEDDING_KEYS)
                      for s in shards])
    vecs = np.concatenate([store.read_npy(layout.doc_embedding_vectors(s)) for s in shards])
    res = spherical_kmeans(vecs, cfg)
    table = keys.with_columns(pl.Series("cluster", res.assign, pl.Int32),
                              pl.Series("distance", res.distance, pl.Float32))
    store.write_table(layout.DOC_CLUSTERS, table, schemas.DOC_CLUSTERS)
    store.write_npy(layout.DOC_CENTROIDS, res.centroids)
    sizes = table.group_by("cluster").len().sort("cluster")
    return global_result(store, CLUSTERS, StageCounts(keys.height, table.height),
                         [layout.DOC_CLUSTERS, layout.DOC_CENTROIDS],
                         {"k_effective": res.k_effective, "k_rule": res.k_rule,
                          "cluster_sizes": md_table(sizes)})


INTERLEAVED_ASSETS = [interleaved_docs, doc_hashes, doc_quality, doc_repeats, docs_curated,
                      doc_embeddings, doc_clusters]
