"""clusters and semdedup (global): spherical k-means per embedding space, then SemDeDup."""

import numpy as np
import polars as pl
from dagster import Config, MaterializeResult, asset

from mm_assets.assets._common import Timer, bar_plot, upstream_shards
from mm_assets.checks import counts_result, counts_spec
from mm_assets.core.cluster import ClusterConfig, spherical_kmeans
from mm_assets.core.encoders import resolve_device
from mm_assets.core.records import StageCounts
from mm_assets.core.semdedup import (
    SemDedupConfig,
    is_duplicate,
    resolve_epsilon,
    semdedup_scores,
)
from mm_assets.core.storage import Store
from mm_assets.partitions import GPU_TAGS
from resources.storage import StorageResource

SPACES = ("image", "text")


def load_space(store: Store, space: str) -> tuple[list[str], np.ndarray]:
    """Keys and (N, D) vectors of one space over every shard with embeddings."""
    keys, vecs = [], []
    for shard in upstream_shards(store, "embeddings", ""):
        base = f"embeddings/{shard}"
        keys.extend(store.read_parquet(f"{base}/{space}_keys.parquet")["key"].to_list())
        vecs.append(np.asarray(store.read_npy(f"{base}/{space}.npy")))
    return keys, (np.concatenate(vecs) if vecs else np.zeros((0, 1), np.float16))


class ClustersConfig(Config):
    k: int = 16
    niter: int = 20
    fit_sample: int = 200_000
    seed: int = 0


@asset(deps=["embeddings"], group_name="semantic", kinds={"faiss"},
       check_specs=[counts_spec("clusters")], op_tags=GPU_TAGS)
def clusters(context, config: ClustersConfig, storage: StorageResource) -> MaterializeResult:
    """Per sample: cluster id and cosine distance to its centroid, per space
    (``clusters/assignments.parquet``); centroids in ``clusters/centroids_{space}.npy``."""
    store = storage.store()
    cfg = ClusterConfig(config.k, config.niter, config.fit_sample, config.seed)
    frames, meta = [], {}
    with Timer() as t:
        for space in SPACES:
            keys, x = load_space(store, space)
            res = spherical_kmeans(x, cfg)
            store.write_npy(f"clusters/centroids_{space}.npy", res.centroids)
            frames.append(pl.DataFrame(
                {"key": keys, "space": [space] * len(keys), "cluster": res.assign,
                 "distance": res.distance},
                schema={"key": pl.Utf8, "space": pl.Utf8, "cluster": pl.Int32,
                        "distance": pl.Float32}))
            sizes = np.bincount(res.assign, minlength=res.k_effective) if keys else []
            meta[f"{space}_points"], meta[f"{space}_k"] = len(keys), res.k_effective
            if len(keys):
                meta[f"{space}_cluster_sizes"] = bar_plot(
                    list(range(len(sizes))), list(map(int, sizes)), f"{space} cluster sizes",
                    "cluster")
    table = pl.concat(frames)
    store.write_parquet("clusters/assignments.parquet", table)
    counts = StageCounts(table.height, table.height)
    if config.k > max(meta["image_points"], meta["text_points"]):
        meta["note"] = f"k={config.k} clamped to the number of points per space"
    return MaterializeResult(metadata={**counts.as_metadata(), **meta, "seconds": t.seconds},
                             check_results=[counts_result(counts)])


class SemDedupAssetConfig(Config):
    epsilon: float = 0.05
    target_fraction: float | None = None
    ranking: str = "hard"
    seed: int = 0
    device: str = "auto"


@asset(deps=["clusters", "exact_duplicates"], group_name="semantic",
       check_specs=[counts_spec("semdedup")], op_tags=GPU_TAGS)
def semdedup(context, config: SemDedupAssetConfig, storage: StorageResource
             ) -> MaterializeResult:
    """SemDeDup score per unique sample (exact duplicates resolved first and reported apart),
    the ε used, and the duplicate decision (``semdedup/scores.parquet``)."""
    store = storage.store()
    cfg = SemDedupConfig(config.epsilon, config.target_fraction, config.ranking, config.seed)
    assign = store.read_parquet("clusters/assignments.parquet")
    groups = store.read_parquet("exact_duplicates/groups.parquet")
    non_rep = set(groups.filter(~pl.col("is_representative"))["key"].to_list())
    frames = []
    with Timer() as t:
        for space in SPACES:
            keys, x = load_space(store, space)
            a = assign.filter(pl.col("space") == space)
            if a["key"].to_list() != keys:
                raise ValueError(f"clusters are stale for space {space}: re-materialize clusters")
            uniq = np.array([k not in non_rep for k in keys], dtype=bool)
            scores = np.full(len(keys), np.nan, np.float32)
            scores[uniq] = semdedup_scores(x[uniq], a["cluster"].to_numpy()[uniq],
                                           a["distance"].to_numpy()[uniq], cfg,
                                           resolve_device(config.device))
            frames.append(pl.DataFrame(
                {"key": keys, "space": [space] * len(keys), "unique": uniq, "score": scores},
                schema={"key": pl.Utf8, "space": pl.Utf8, "unique": pl.Boolean,
                        "score": pl.Float32}))
    table = pl.concat(frames)
    uniq_scores = table.filter(pl.col("unique"))["score"].to_numpy()
    eps = resolve_epsilon(uniq_scores, cfg)
    table = table.with_columns(pl.Series("duplicate", is_duplicate(
        np.nan_to_num(table["score"].to_numpy(), nan=-2.0), eps)))
    store.write_parquet("semdedup/scores.parquet", table)
    n_dup, n_uniq = int(table["duplicate"].sum()), int(uniq_scores.size)
    counts = StageCounts(table.height, table.height - n_dup - (table.height - n_uniq))
    counts.removed["semdedup"], counts.removed["exact_duplicate"] = n_dup, table.height - n_uniq
    return MaterializeResult(metadata={
        **counts.as_metadata(), "epsilon": eps, "threshold_cosine": 1 - eps,
        "unique_samples": n_uniq, "fraction_removed_of_unique": n_dup / max(1, n_uniq),
        "target_fraction": config.target_fraction, "ranking": cfg.ranking,
        "seconds": t.seconds}, check_results=[counts_result(counts)])
