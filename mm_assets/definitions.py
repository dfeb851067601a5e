"""The Dagster code location: every asset, resource, sensor and job of mm-assets."""

from __future__ import annotations

import os

from dagster import Definitions, ExecutorDefinition, ScheduleDefinition, in_process_executor

from mm_assets.assets.curated import curated
from mm_assets.assets.dedup import exact_duplicates, image_hashes
from mm_assets.assets.embeddings import embeddings
from mm_assets.assets.evals import ablations, eval_results
from mm_assets.assets.interleaved import INTERLEAVED_ASSETS
from mm_assets.assets.merged import merged, rephrased
from mm_assets.assets.mining import mined
from mm_assets.assets.mixtures import mixtures
from mm_assets.assets.perplexity import ppl_deciles, ppl_scores
from mm_assets.assets.pool import pool_assign
from mm_assets.assets.raw import raw_shards
from mm_assets.assets.report import report
from mm_assets.assets.semantic import clusters
from mm_assets.assets.semdedup import semdedup, semdedup_plan, semdedup_range
from mm_assets.assets.synthetic import synthetic
from mm_assets.assets.synthetic_checked import synthetic_checked
from mm_assets.assets.text_quality import text_quality
from mm_assets.jobs import eval_results_job, global_job, ingest_job, per_shard_job, pool_assign_job
from mm_assets.partitions import GLOBAL_CRON
from resources.models import EmbedderResource, LanguageModelResource
from resources.storage import StorageResource
from sensors.new_data import new_data_sensor
from sensors.new_evals import eval_results_sensor

PER_SHARD = [raw_shards, image_hashes, embeddings, ppl_scores, text_quality]
GLOBAL_1 = [exact_duplicates, clusters, ppl_deciles, semdedup]
ALL_ASSETS = [raw_shards, image_hashes, embeddings, ppl_scores, text_quality, exact_duplicates,
              clusters,
              pool_assign, mined,
              semdedup, ppl_deciles, curated, merged, rephrased, mixtures, report, synthetic,
              synthetic_checked,
              eval_results, ablations]
ALL_ASSETS += INTERLEAVED_ASSETS  # group interleaved, doc_shards partitions
ALL_ASSETS += [semdedup_plan, semdedup_range]  # SemDeDup cluster ranges as partitions


def executor_from_env() -> ExecutorDefinition | None:
    """``MM_ASSETS_EXECUTOR``: ``multiprocess`` (default, Dagster's: one process per step) or
    ``in_process`` (every step of a run in the run's process: models and torch load once per
    run — cheaper for small per-shard runs on a CPU box, no step isolation).

    Raises:
        ValueError: another value.
    """
    kind = os.environ.get("MM_ASSETS_EXECUTOR", "multiprocess")
    if kind not in ("multiprocess", "in_process"):
        raise ValueError(f"MM_ASSETS_EXECUTOR: multiprocess or in_process, got {kind!r}")
    return in_process_executor if kind == "in_process" else None


def default_resources() -> dict:
    return {"storage": StorageResource(), "embedder": EmbedderResource(),
            "lm": LanguageModelResource()}


nightly_global = ScheduleDefinition(
    name="nightly_global", job=global_job, cron_schedule=GLOBAL_CRON,
    description="global stages once a night, never on every shard")

defs = Definitions(assets=ALL_ASSETS, resources=default_resources(),
                   jobs=[per_shard_job, global_job, ingest_job, eval_results_job,
                         pool_assign_job],
                   schedules=[nightly_global],
                   sensors=[new_data_sensor, eval_results_sensor], executor=executor_from_env())
