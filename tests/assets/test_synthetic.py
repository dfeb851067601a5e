"""The synthetic asset (one partition per spec) and a mixture curated : synthetic = 9 : 1,
materialized through Dagster and loaded back with mm_assets.loader."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import polars as pl
from dagster import AssetKey, instance_for_test, materialize
from PIL import Image

from mm_assets.assets.mixtures import mixtures
from mm_assets.assets.synthetic import register_specs, synthetic
from mm_assets.core import layout, schemas
from mm_assets.core.commits import read_commit
from mm_assets.core.records import Sample
from mm_assets.core.shards import read_samples, write_samples
from mm_assets.core.synth.generate import check_sample
from mm_assets.loader import iter_mixture
from resources.storage import StorageResource

SPEC = "tiny_clocks"
RECIPE = "curated_synth_9to1"


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(i).integers(0, 255, (24, 32, 3), dtype=np.uint8)
                    ).save(buf, "PNG")
    return buf.getvalue()


def _root(tmp_path) -> StorageResource:
    storage = StorageResource(root=str(tmp_path / "root"))
    store = storage.store()
    curated = [Sample(f"c{i:04d}", [{"from": "human", "value": f"<image>\nWhat is {i}?"},
                                    {"from": "gpt", "value": f"It is {i}."}],
                      [_png(i)], ["png"], "gen") for i in range(180)]
    with store.open_write(layout.curated_shard("000000")) as f:
        write_samples(f, curated)
    store.write_table(layout.CLUSTER_ASSIGNMENTS,
                      pl.DataFrame([], schema=schemas.CLUSTER_ASSIGNMENTS),
                      schemas.CLUSTER_ASSIGNMENTS)
    store.write_bytes(layout.synthetic_spec(f"{SPEC}.yaml"),
                      f"name: {SPEC}\ngenerator: clocks\nn: 40\nsize: 96\nshard_size: 16\n"
                      "seed: 3\n".encode())
    store.write_bytes(layout.recipe(f"{RECIPE}.yaml"),
                      f"name: {RECIPE}\nsources: [curated, {{synthetic: {SPEC}}}]\n"
                      f"ratio: {{curated: 9, {SPEC}: 1}}\ntotal: 200\nseed: 1\n"
                      "shard_size: 64\n".encode())
    return storage


def test_synthetic_partition_then_a_9_to_1_mixture(tmp_path):
    storage = _root(tmp_path)
    store = storage.store()
    with instance_for_test() as instance:
        assert register_specs(instance, storage) == [SPEC]  # the root's own specs
        instance.add_dynamic_partitions("recipes", [RECIPE])
        res = materialize([synthetic], partition_key=SPEC, instance=instance,
                          resources={"storage": storage})
        assert res.success
        meta = res.asset_materializations_for_node("synthetic")[0].metadata
        assert meta["n_out"].value == 40 and meta["n_quarantined"].value == 0
        assert meta["uniformity_p_value"].value is not None
        rec = read_commit(store, "synthetic", SPEC)
        assert rec["counts"]["n_out"] == 40 and len(rec["outputs"]) == 3  # 16 + 16 + 8
        assert store.exists(layout.quarantine("synthetic", SPEC))
        assert store.read_json(layout.synthetic_stats(SPEC))["n_out"] == 40

        res = materialize([mixtures], partition_key=RECIPE, instance=instance,
                          resources={"storage": storage})
        assert res.success
        lineage = store.read_json(layout.mixture_lineage(RECIPE))["upstream"]
        assert lineage[f"synthetic:{SPEC}"]["spec"] == SPEC
        assert instance.get_latest_materialization_event(AssetKey("mixtures")) is not None

    loaded = list(iter_mixture(store, RECIPE))
    origin = Counter(k.split("-")[0] for k, _, _ in loaded)
    assert origin == {"curated": 180, SPEC: 20}
    assert all(len(images) == 1 and conv[0]["value"].startswith("<image>")
               for _, images, conv in loaded)
    manifest = store.read_json(layout.mixture_manifest(RECIPE))
    assert manifest["per_stratum"] == {"curated": 180, SPEC: 20}
    synth = [s for p in manifest["shards"] for s in read_samples(store.open_read(p))
             if s.metadata.get("origin") == SPEC]
    assert len(synth) == 20 and all(check_sample(s) is None for s in synth)
    assert {s.metadata["source_asset"] for s in synth} == {f"synthetic:{SPEC}"}
