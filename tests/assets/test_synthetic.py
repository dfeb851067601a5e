"""The synthetic and synthetic_checked assets (one partition per spec) and a mixture
curated : synthetic = 9 : 1 that reads the checked samples, materialized through Dagster and
loaded back with mm_assets.loader."""

from __future__ import annotations

import io
from collections import Counter

import numpy as np
import polars as pl
from dagster import AssetKey, instance_for_test, materialize
from PIL import Image

from mm_assets.assets.mixtures import mixtures
from mm_assets.assets.synthetic import register_specs, synthetic
from mm_assets.assets.synthetic_checked import synthetic_checked
from mm_assets.core import layout, schemas
from mm_assets.core.commits import read_commit
from mm_assets.core.records import Sample
from mm_assets.core.shards import read_samples, write_samples
from mm_assets.core.synth.generate import check_sample
from mm_assets.loader import iter_mixture
from resources.models import LanguageModelResource
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


def _corpus_copy_of(store, sample) -> str:
    """A committed corpus image_hashes shard holding ``sample``'s image (re-encoded: other
    bytes, same pixels); returns the corpus key."""
    from mm_assets.core.commits import write_commit
    from mm_assets.core.dedup.exact import hash_samples
    from mm_assets.core.records import StageCounts

    buf = io.BytesIO()
    Image.open(io.BytesIO(sample.images[0])).save(buf, "PNG", compress_level=9)
    assert buf.getvalue() != sample.images[0]
    copy = Sample("corpus_0001", sample.conversations, [buf.getvalue()], ["png"], "web")
    store.write_table(layout.image_hashes("000000"), hash_samples([copy], 10**8),
                      schemas.IMAGE_HASHES)
    write_commit(store, "image_hashes", "000000", StageCounts(1, 1))
    return copy.key


def test_synthetic_checked_then_a_9_to_1_mixture(tmp_path, shared):
    storage = _root(tmp_path)
    store = storage.store()
    arpa = shared / "text_ref" / "kenlm" / "lm" / "test.arpa"  # small real LM, CPU, fast
    resources = {"storage": storage, "lm": LanguageModelResource(model=f"kenlm:{arpa}")}
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
                          resources={"storage": storage}, raise_on_error=False)
        assert not res.success  # the mixture reads only checked samples: not yet there

        rendered = [s for p in sorted(rec["outputs"]) if p.endswith(".tar")
                    for s in read_samples(store.open_read(p))]
        corpus_key = _corpus_copy_of(store, rendered[7])
        res = materialize([synthetic_checked], partition_key=SPEC, instance=instance,
                          resources=resources)
        assert res.success
        meta = res.asset_materializations_for_node("synthetic_checked")[0].metadata
        assert meta["n_in"].value == 40 and meta["n_out"].value == 39
        assert meta["removed_corpus_duplicate"].value == 1 and meta["reconciles"].value
        assert meta["ppl_model"].value.startswith("kenlm:")
        checks = {c.check_name: c.passed for c in res.get_asset_check_evaluations()}
        assert checks == {"counts_reconcile": True, "input_matches_upstream": True}
        dec = store.read_table(layout.synthetic_checked_table(SPEC, "decisions"),
                               schemas.SYNTHETIC_DECISIONS)
        assert dec.height == 40 and dec["ppl"].null_count() == 0
        gone = dec.filter(pl.col("status") == "removed").row(0, named=True)
        assert (gone["key"], gone["reason"], gone["duplicate_of"]) == \
            (rendered[7].key, "corpus_duplicate", corpus_key)
        ppl = store.read_table(layout.synthetic_checked_table(SPEC, "ppl"), schemas.PPL_SCORES)
        assert ppl.height == 40 and (ppl["ppl"] > 1).all()
        checked = read_commit(store, "synthetic_checked", SPEC)
        assert checked["counts"]["n_out"] == 39

        res = materialize([mixtures], partition_key=RECIPE, instance=instance,
                          resources={"storage": storage})
        assert res.success
        lineage = store.read_json(layout.mixture_lineage(RECIPE))["upstream"]
        assert lineage[f"synthetic:{SPEC}"]["spec"] == SPEC
        assert lineage[f"synthetic:{SPEC}"]["run_id"] is not None
        assert instance.get_latest_materialization_event(AssetKey("mixtures")) is not None

        res = materialize([synthetic], partition_key=SPEC, instance=instance,
                          resources={"storage": storage})  # re-rendering invalidates the check
        assert res.success and read_commit(store, "synthetic_checked", SPEC) is None

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
    assert rendered[7].key not in {s.metadata["source_key"] for s in synth}  # removed one
