import ast
from pathlib import Path

from dagster import AssetKey

from mm_assets.definitions import defs

EXPECTED = {"raw_shards", "image_hashes", "exact_duplicates", "embeddings", "clusters",
            "semdedup", "ppl_scores", "ppl_deciles", "curated", "merged", "rephrased",
            "mixtures", "text_quality", "report", "synthetic", "synthetic_checked", "eval_results",
            "ablations"}
# issue 16 (interleaved documents, group "interleaved"): per doc shard, and doc_repeats global
INTERLEAVED_PER_DOC_SHARD = {"interleaved_docs", "doc_hashes", "doc_quality", "docs_curated",
                             "doc_embeddings"}
EXPECTED |= INTERLEAVED_PER_DOC_SHARD | {"doc_repeats", "doc_clusters"}
EXPECTED |= {"mined"}  # issue 15 (mining, group "mining"): one partition per mining recipe
EXPECTED |= {"pool_assign"}  # issue 15 (group "mining"): one partition per pool shard
# issue 20: SemDeDup cluster ranges as partitions (group "semantic")
EXPECTED |= {"semdedup_plan", "semdedup_range"}


def test_definitions_load_with_the_whole_graph():
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == EXPECTED


def test_lineage_follows_the_design():
    graph = defs.resolve_asset_graph()

    def parents(name):
        return {k.to_user_string() for k in graph.get(AssetKey(name)).parent_keys}

    assert parents("image_hashes") == {"raw_shards"}
    assert parents("exact_duplicates") == {"image_hashes"}
    assert parents("semdedup") == {"clusters", "exact_duplicates", "image_hashes",  # pHashes
                                   "semdedup_plan", "semdedup_range"}
    assert parents("semdedup_range") == {"semdedup_plan", "embeddings"}
    assert parents("semdedup_plan") == {"clusters", "exact_duplicates", "embeddings"}
    assert parents("curated") == {"raw_shards", "exact_duplicates", "semdedup", "ppl_deciles",
                                  "text_quality"}
    assert parents("text_quality") == {"raw_shards"}
    assert parents("rephrased") == {"merged"}
    assert parents("mixtures") == {"raw_shards", "exact_duplicates", "clusters", "curated",
                                   "merged", "rephrased", "synthetic_checked", "mined",
                                   "interleaved_docs", "docs_curated"}  # {interleaved: ...}
    assert parents("mined") == {"pool_assign", "clusters", "image_hashes", "embeddings"}
    assert parents("synthetic_checked") == {"synthetic"}
    assert parents("eval_results") == {"mixtures"}
    assert parents("ablations") == {"eval_results"}
    assert parents("report") == {"raw_shards", "exact_duplicates", "semdedup", "curated",
                                 "merged", "rephrased", "mixtures"}


def test_partitioning():
    graph = defs.resolve_asset_graph()
    per_shard = {"raw_shards", "image_hashes", "embeddings", "ppl_scores", "text_quality",
                 "curated"}
    for name in EXPECTED:
        pdef = graph.get(AssetKey(name)).partitions_def
        if name in per_shard:
            assert pdef.name == "shards"
        elif name in ("mixtures", "eval_results"):
            assert pdef.name == "recipes"
        elif name in INTERLEAVED_PER_DOC_SHARD:
            assert pdef.name == "doc_shards"
        elif name in ("synthetic", "synthetic_checked"):
            assert pdef.name == "synthetic"
        elif name == "mined":
            assert pdef.name == "mining"
        elif name == "pool_assign":
            assert pdef.name == "pool_shards"
        elif name == "semdedup_range":
            assert pdef.name == "semdedup_ranges"
        else:
            assert pdef is None, name


def test_core_never_imports_dagster():
    core = Path(__file__).resolve().parents[2] / "mm_assets" / "core"
    for path in core.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "dagster" for n in names), path.name


def test_automation_what_runs_when():
    graph = defs.resolve_asset_graph()
    sched = defs.get_schedule_def("nightly_global")
    assert sched.cron_schedule == "0 2 * * *"
    job = defs.resolve_job_def("global_job")
    assert {k.to_user_string() for k in job.asset_layer.selected_asset_keys} == {
        "exact_duplicates", "clusters", "ppl_deciles", "semdedup_plan"}
    for name in ("semdedup_range", "semdedup"):  # after the plan, by automation
        assert "eager" in str(graph.get(AssetKey(name)).automation_condition).lower()
    for name in ("curated", "merged"):
        assert "on_cron(0 3 * * *" in str(graph.get(AssetKey(name)).automation_condition)
    for name in ("raw_shards", "image_hashes", "embeddings", "ppl_scores", "mixtures"):
        assert graph.get(AssetKey(name)).automation_condition is None  # sensor / on request
    targets = defs.resolve_sensor_def("new_data_sensor").targets
    assert {t.job_name for t in targets} == {"per_shard_job", "ingest_job", "pool_assign_job"}
    evals = defs.resolve_sensor_def("eval_results_sensor").targets
    assert {t.job_name for t in evals} == {"eval_results_job"}
