"""The whole graph materialized once per test session on real files from ../shared/data."""

import pytest
from dagster import AssetKey, instance_for_test

from mm_assets.core.ingest.plan import IngestConfig, plan_ingest
from mm_assets.core.mix.registry import shipped
from mm_assets.runner import ORDER, run_graph
from resources.models import EmbedderResource, LanguageModelResource
from resources.storage import StorageResource

LMMS = ["single_image.json", "single_image_has_text_only.json", "multi_images.json",
        "celeba_image_train.json", "celeba_image_eval.json"]


@pytest.fixture(scope="session")
def graph(shared, tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    storage = StorageResource(root=str(root))
    store = storage.store()
    ex = shared / "llava" / "lmms-finetune" / "example_data"
    lf = shared / "llava" / "LLaMA-Factory" / "data" / "mllm_demo.json"
    cfg = IngestConfig(shard_size=40)
    shards = plan_ingest(store, [str(ex / f) for f in LMMS], str(ex / "images"), cfg)
    shards += plan_ingest(store, [str(lf)], None, cfg)
    resources = {"storage": storage, "embedder": EmbedderResource(device="cpu", batch_size=16),
                 "lm": LanguageModelResource(device="cpu")}
    run_config = {"ops": {"rephrased": {"config": {"max_samples": 2, "max_new_tokens": 24}},
                          "clusters": {"config": {"k": 4}},
                          "semdedup": {"config": {"epsilon": 0.01}}}}
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", shards)
        summary = run_graph(instance, resources, run_config=run_config,
                            recipes=sorted(shipped()),  # examples: named explicitly
                            batch=8)  # per-shard layers in partition-range runs: fewer
        # Dagster runs and model loads (each shard keeps its own record, counts and checks)
        checks = {a: instance.get_latest_materialization_event(AssetKey(a)) for a in ORDER}
        yield {"store": store, "summary": summary, "shards": shards, "events": checks,
               "resources": resources,
               "ex": ex, "lf": lf, "instance": instance}


