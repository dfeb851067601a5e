"""clusters and semdedup (global): spherical k-means per embedding space, then SemDeDup."""

import numpy as np
import polars as pl
from dagster import MaterializeResult, asset

from mm_assets.assets._common import (
    Timer,
    bar_plot,
    global_result,
    md_table,
    read_shard,
    upstream_shards,
)
from mm_assets.checks import counts_spec
from mm_assets.config import dagster_config
from mm_assets.core import layout, schemas
from mm_assets.core.records import StageCounts
from mm_assets.core.semantic.cluster import ClusterConfig, spherical_kmeans_blocks
from mm_assets.core.semantic.encoders import resolve_device
from mm_assets.core.semantic.semdedup import SemDedupConfig
from mm_assets.core.semantic.semdedup_ranges import ShardVectors, auto_workers, semdedup_ranges
from mm_assets.core.storage import Store
from mm_assets.partitions import GPU_POOL, GPU_TAGS
from mm_assets.viz.contact import contact_sheet
from mm_assets.viz.plots import png_markdown, removal_curve_plot
from resources.storage import StorageResource

SPACES = ("image", "text")
PHASHES = schemas.subset(schemas.IMAGE_HASHES, "key", "phashes")
CLUSTER_TABLE = layout.CLUSTER_ASSIGNMENTS
SCORES_TABLE = layout.SEMDEDUP_SCORES


def space_keys(store: Store, space: str) -> tuple[list[str], int]:
    """Keys of one space in corpus order and the vector dimension (0 when empty)."""
    keys, dim = [], 0
    for shard in upstream_shards(store, "embeddings"):
        keys.extend(store.read_table(layout.embedding_keys(shard, space),
                                     schemas.EMBEDDING_KEYS)["key"].to_list())
        dim = dim or int(store.read_npy(layout.embedding_vectors(shard, space)).shape[1])
    return keys, dim


def space_vectors(store: Store, space: str) -> tuple[list[str], ShardVectors]:
    """Keys of one space in corpus order and where its vectors are (per-shard ``.npy`` files
    and row counts, from the key tables; only the first non-empty file's header is read)."""
    keys, rels, counts, dim = [], [], [], 0
    for shard in upstream_shards(store, "embeddings"):
        ks = store.read_table(layout.embedding_keys(shard, space),
                              schemas.EMBEDDING_KEYS)["key"].to_list()
        keys.extend(ks)
        rels.append(layout.embedding_vectors(shard, space))
        counts.append(len(ks))
        if ks and not dim:
            dim = int(store.read_npy(rels[-1]).shape[1])
    return keys, ShardVectors(store, tuple(rels), np.array(counts, np.int64), dim)


def space_blocks(store: Store, space: str):
    """The vectors of one space, one (N_shard, D) float16 block per shard, in corpus order."""
    for shard in upstream_shards(store, "embeddings"):
        yield np.asarray(store.read_npy(layout.embedding_vectors(shard, space)))


def first_images(store: Store, keys: set[str]) -> dict[str, bytes]:
    """First image of each wanted key, reading only the raw shards that hold them."""
    out: dict[str, bytes] = {}
    for shard in upstream_shards(store, "embeddings"):
        have = set(store.read_table(layout.embedding_keys(shard, "image"),
                                    schemas.EMBEDDING_KEYS)["key"])
        if have & keys:
            for s in read_shard(store, layout.RAW_SHARDS, shard):
                if s.key in keys and s.images:
                    out[s.key] = s.images[0]
    return out


def sheet_markdown(store: Store, rel: str, rows: list[tuple[str, list[str]]], thumb: int = 100,
                   label_width: int = 200):
    """Write a contact sheet PNG for ``rows`` of (label, keys) and return it as metadata."""
    images = first_images(store, {k for _, ks in rows for k in ks})
    png = contact_sheet([(label, [images[k] for k in ks if k in images]) for label, ks in rows],
                        thumb=thumb, label_width=label_width)
    store.write_bytes(rel, png)
    return png_markdown(png)


ClustersConfig = dagster_config(ClusterConfig, "ClustersConfig", extra={
    "sheet_size": (int, 8, "images per cluster in the contact sheet")})


@asset(deps=["embeddings"], group_name="semantic", kinds={"faiss"},
       check_specs=[counts_spec("clusters")], op_tags=GPU_TAGS, pool=GPU_POOL)
def clusters(context, config: ClustersConfig, storage: StorageResource) -> MaterializeResult:
    """Per sample: cluster id and cosine distance to its centroid, per space
    (``clusters/assignments.parquet``); centroids in ``clusters/centroids_{space}.npy``.
    Fit on the seeded ``fit_sample`` rows, then assigned shard by shard: memory ≈ the fit
    sample as float32 (≤ fit_sample × D × 4 B) + ≈ 100 B per point (keys, assignment table)."""
    store = storage.store()
    cfg = config.core()
    frames, meta = [], {}
    with Timer() as t:
        for space in SPACES:
            keys, dim = space_keys(store, space)
            res = spherical_kmeans_blocks(lambda sp=space: space_blocks(store, sp), len(keys),
                                          dim, cfg)
            store.write_npy(layout.centroids(space), res.centroids)
            frames.append(pl.DataFrame(
                {"key": keys, "space": [space] * len(keys), "cluster": res.assign,
                 "distance": res.distance},
                schema={"key": pl.Utf8, "space": pl.Utf8, "cluster": pl.Int32,
                        "distance": pl.Float32}))
            sizes = np.bincount(res.assign, minlength=res.k_effective) if keys else []
            meta[f"{space}_points"], meta[f"{space}_k"] = len(keys), res.k_effective
            meta[f"{space}_k_rule"] = res.k_rule  # small corpora: fewer, fuller clusters
            if len(keys):
                meta[f"{space}_cluster_sizes"] = bar_plot(
                    list(range(len(sizes))), list(map(int, sizes)),
                    f"{space} space: samples per cluster ({len(keys)} samples)", "cluster id")
    table = pl.concat(frames)
    store.write_table(CLUSTER_TABLE, table, schemas.CLUSTER_ASSIGNMENTS)
    near = (table.filter(pl.col("space") == "image").sort("distance")
            .group_by("cluster", maintain_order=True).head(config.sheet_size).sort("cluster"))
    img = table.filter(pl.col("space") == "image")
    rows = [(f"image cluster {c}\n{int((img['cluster'] == c).sum())} samples",
             g["key"].to_list())
            for (c,), g in near.group_by("cluster", maintain_order=True)][:24]
    if rows:
        meta["contact_sheet"] = sheet_markdown(store, layout.CLUSTER_SHEET, rows)
    counts = StageCounts(meta["image_points"] + meta["text_points"], table.height)
    if config.k > max(meta["image_points"], meta["text_points"]):
        meta["note"] = f"k={config.k} clamped to the number of points per space"
    return global_result(store, "clusters", counts, [CLUSTER_TABLE],
                         {**meta, "seconds": t.seconds})


SemDedupAssetConfig = dagster_config(SemDedupConfig, "SemDedupAssetConfig", extra={
    "device": (str, "auto", "auto (cuda when present), cpu, cuda, cuda:1"),
    "workers": (int, 0, ("processes scoring cluster ranges; 0 = auto (1 on GPU or below "
                         "100k points, else one per core)")),
    "range_mib": (int, 128, ("most vector MiB one cluster range holds in memory (a larger "
                             "cluster is a range of its own)"))})


def load_phashes(store: Store, keys: list[str]) -> list[list[int]]:
    """Per key (in order), the pHashes of its images from ``image_hashes`` (``[]``: none).

    Raises:
        ValueError: a key has no image_hashes row (re-materialize image_hashes).
    """
    want, got = set(keys), {}
    for shard in upstream_shards(store, "image_hashes"):
        t = store.read_table(layout.image_hashes(shard), PHASHES).select("key", "phashes")
        got.update((k, list(p or [])) for k, p in t.iter_rows() if k in want)
    missing = want - got.keys()
    if missing:
        raise ValueError(f"{len(missing)} image samples have no image_hashes row (e.g. "
                         f"{min(missing)}): re-materialize image_hashes")
    return [got[k] for k in keys]


@asset(deps=["clusters", "exact_duplicates", "image_hashes"], group_name="semantic",
       check_specs=[counts_spec("semdedup")], op_tags=GPU_TAGS, pool=GPU_POOL)
def semdedup(context, config: SemDedupAssetConfig, storage: StorageResource
             ) -> MaterializeResult:
    """SemDeDup score per unique sample (exact duplicates resolved first and reported apart),
    the ε used per space, and the duplicate decision (``semdedup/scores.parquet``). Image
    duplicates in dense clusters (text pages, templated charts) are confirmed by pHash
    (``unconfirmed``: above the threshold but kept).

    Vectors are never all in memory: each cluster range (at most ``range_mib`` of vectors)
    reads only its own unique rows from the per-shard embedding files (memory-mapped) and is
    scored in one of ``workers`` processes (:mod:`mm_assets.core.semantic.semdedup_ranges`).
    Memory here ≈ 21 B per point + ≈ 44 B per unique point (range jobs) + the key list
    (≈ 60–100 B per point) + the image pHash lists (≈ 100 B per image point); per worker: one
    range's vectors (2·D B per unique point, ≤ ``range_mib``) + the cluster being scored as
    float32."""
    store = storage.store()
    cfg = config.core()
    assign = store.read_table(CLUSTER_TABLE, schemas.CLUSTER_ASSIGNMENTS)
    groups = store.read_table(layout.EXACT_GROUPS,
                              schemas.subset(schemas.EXACT_GROUPS, "key", "is_representative"))
    non_rep = set(groups.filter(~pl.col("is_representative"))["key"].to_list())
    frames, meta, n_read = [], {}, 0
    with Timer() as t:
        for space in SPACES:
            keys, src = space_vectors(store, space)
            n_read += len(keys)
            a = assign.filter(pl.col("space") == space)
            if a["key"].to_list() != keys:
                raise ValueError(f"clusters are stale for space {space}: re-materialize clusters")
            uniq = np.array([k not in non_rep for k in keys], dtype=bool)
            ph = load_phashes(store, keys) if space == "image" else None
            device = resolve_device(config.device)
            res = semdedup_ranges(src, a["cluster"].to_numpy(), a["distance"].to_numpy(), uniq,
                                  cfg, device, auto_workers(len(keys), config.workers, device),
                                  config.range_mib * 2**20, phashes=ph)
            partner = [keys[i] if i >= 0 else None for i in res.partner]
            frames.append(a.select("key", "space", "cluster").with_columns(
                pl.Series("unique", uniq), pl.Series("score", res.scores),
                pl.Series("duplicate", res.duplicate),
                pl.Series("partner", partner, dtype=pl.Utf8),
                pl.Series("unconfirmed", res.unconfirmed)))
            meta[f"{space}_epsilon"] = res.epsilon
            if ph is not None:
                meta["image_dense_clusters"] = ", ".join(map(str, res.dense)) or "none"
                meta["image_unconfirmed_kept"] = int(res.unconfirmed.sum())
            if res.n_unique:
                meta[f"{space}_removal_curve"] = removal_curve_plot(res.scores, res.epsilon,
                                                                       space)
    table = pl.concat(frames)
    store.write_table(SCORES_TABLE, table, schemas.SEMDEDUP_SCORES)
    pairs = table.filter(pl.col("duplicate") & (pl.col("space") == "image")).sort(
        "score", descending=True).head(12)
    if pairs.height:
        meta["example_pairs"] = sheet_markdown(store, layout.SEMDEDUP_PAIRS, [
            ((f"cluster {r['cluster']}, cos {r['score']:.3f}\nleft kept: {r['partner']}\n"
              f"right removed: {r['key']}"), [r["partner"], r["key"]])
            for r in pairs.iter_rows(named=True)], thumb=250, label_width=300)
    n_dup, n_uniq = int(table["duplicate"].sum()), int(table["unique"].sum())
    # counted from the decisions: kept = unique and not a SemDeDup duplicate
    counts = StageCounts(n_read, table.filter(pl.col("unique") & ~pl.col("duplicate")).height)
    counts.removed["semdedup"] = int((table["unique"] & table["duplicate"]).sum())
    counts.removed["exact_duplicate"] = int((~table["unique"]).sum())
    per_cluster = table.filter(pl.col("unique")).group_by("space", "cluster").agg(
        pl.len().alias("unique"), pl.col("duplicate").sum().alias("removed")).sort(
        "removed", descending=True).head(15)
    return global_result(store, "semdedup", counts, [SCORES_TABLE], {
        **meta, "unique_samples": n_uniq,
        "fraction_removed_of_unique": n_dup / max(1, n_uniq), "per_cluster": md_table(per_cluster),
        "target_fraction": config.target_fraction, "ranking": cfg.ranking,
        "boundary": "duplicate when score >= 1 - epsilon", "seconds": t.seconds})
