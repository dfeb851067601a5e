"""clusters (global): spherical k-means per embedding space (SemDeDup on top of it:
:mod:`mm_assets.assets.semdedup`)."""

import numpy as np
import polars as pl
from dagster import MaterializeResult, asset

from mm_assets.assets._common import (
    Timer,
    bar_plot,
    global_result,
    read_shard,
    upstream_shards,
)
from mm_assets.checks import counts_spec
from mm_assets.config import dagster_config
from mm_assets.core import layout, schemas
from mm_assets.core.records import StageCounts
from mm_assets.core.semantic.cluster import ClusterConfig, spherical_kmeans_blocks
from mm_assets.core.semantic.semdedup_plan import withdraw
from mm_assets.core.storage import Store
from mm_assets.partitions import GPU_POOL, GPU_TAGS, semdedup_ranges
from mm_assets.viz.contact import contact_sheet
from mm_assets.viz.plots import png_markdown
from resources.storage import StorageResource

SPACES = ("image", "text")
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
    sample as float32 (≤ fit_sample × D × 4 B) + ≈ 100 B per point (keys, assignment table).
    Withdraws the SemDeDup range plan and its ``semdedup_ranges`` partitions first: ranges of
    other clusters are never scored or used."""
    store = storage.store()
    cfg = config.core()
    withdraw(store)
    for key in context.instance.get_dynamic_partitions(semdedup_ranges.name):
        context.instance.delete_dynamic_partition(semdedup_ranges.name, key)
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
