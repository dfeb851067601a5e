"""SemDeDup ranges as Dagster partitions through the real graph (``run_graph``): semdedup_plan
registers one ``semdedup_ranges`` partition per range, the ranges run as partition runs (two
per run, as ``run --batch 2``), semdedup finishes from the range tables with the decisions of
the in-memory reference; a re-clustering withdraws the plan and its partitions, and semdedup
then refuses to run."""

import io

import numpy as np
import polars as pl
import pytest
from dagster import instance_for_test
from PIL import Image

from mm_assets.core import layout, schemas
from mm_assets.core.commits import GLOBAL, read_commits, write_commit
from mm_assets.core.records import Sample, StageCounts
from mm_assets.core.semantic.semdedup import SemDedupConfig, semdedup_space
from mm_assets.core.shards import write_samples
from mm_assets.definitions import default_resources
from mm_assets.runner import NothingIngested, run_graph
from resources.storage import StorageResource

SHARDS = ["000000", "000001", "000002"]
SELECT = ["clusters", "semdedup_plan", "semdedup_range", "semdedup"]


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (i * 7 % 256, i * 13 % 256, i * 29 % 256)).save(buf, "PNG")
    return buf.getvalue()


def _hash_rows(keys, phashes) -> pl.DataFrame:
    rows = {c: [None] * len(keys) for c in schemas.IMAGE_HASHES}
    rows.update(key=keys, source=["t"] * len(keys), n_images=[len(p) for p in phashes],
                phashes=phashes)
    return pl.DataFrame(rows, schema=schemas.IMAGE_HASHES)


def _root(store, rng):
    """3 shards of 40 image + 10 text samples: clustered vectors with near-copies (their pHash
    a few bits from the original's, or far for some), two exact-duplicate groups."""
    d, x_img, x_txt, ph, img_keys, txt_keys = 16, [], [], [], [], []
    centers = rng.standard_normal((4, d))
    for s, shard in enumerate(SHARDS):
        ik = [f"s{s}i{j:02d}" for j in range(40)]
        tk = [f"s{s}t{j:02d}" for j in range(10)]
        x = centers[rng.integers(0, 4, 40)] + 0.5 * rng.standard_normal((40, d))
        x[20:30] = x[:10] + 0.02 * rng.standard_normal((10, d))  # near-copies
        p = rng.integers(0, 2**62, 40)
        p[20:25] = p[:5] ^ 3  # copies whose pHash agrees (2 bits); 25..29 do not
        t = rng.standard_normal((10, d))
        t[5:] = t[:5] + 0.01
        for arr, xs in ((x, x_img), (t, x_txt)):
            xs.append((arr / np.linalg.norm(arr, axis=1, keepdims=True)).astype(np.float16))
        ph += [[int(v)] for v in p]
        img_keys += ik
        txt_keys += tk
        samples = [Sample(k, [{"from": "human", "value": f"<image>\nq {k}"},
                              {"from": "gpt", "value": "a"}], [_png(s * 40 + j)], ["png"], "t")
                   for j, k in enumerate(ik)]
        samples += [Sample(k, [{"from": "human", "value": f"q {k}"},
                               {"from": "gpt", "value": "a"}], source="t") for k in tk]
        with store.open_write(layout.raw_shard(shard)) as f:
            write_samples(f, samples)
        store.write_bytes(layout.manifest(shard), b"{}\n")
        for space, keys, arr in (("image", ik, x_img[-1]), ("text", tk, x_txt[-1])):
            store.write_npy(layout.embedding_vectors(shard, space), arr)
            store.write_table(layout.embedding_keys(shard, space),
                              pl.DataFrame({"key": keys}), schemas.EMBEDDING_KEYS)
        store.write_table(layout.image_hashes(shard),
                          _hash_rows(ik + tk, ph[-40:] + [[]] * 10), schemas.IMAGE_HASHES)
        for asset in ("raw_shards", "embeddings", "image_hashes"):
            write_commit(store, asset, shard, StageCounts(50, 50))
    groups = pl.DataFrame({  # s0i03 == s1i03 and s0t01 == s2t01: the second is not scored
        "key": ["s0i03", "s1i03", "s0t01", "s2t01"], "kind": ["image"] * 2 + ["text"] * 2,
        "group_id": ["g1", "g1", "g2", "g2"], "group_size": [2, 2, 2, 2],
        "representative": ["s0i03", "s0i03", "s0t01", "s0t01"],
        "is_representative": [True, False, True, False], "action": ["keep", "remove"] * 2},
        schema=schemas.EXACT_GROUPS)
    store.write_table(layout.EXACT_GROUPS, groups, schemas.EXACT_GROUPS)
    write_commit(store, "exact_duplicates", GLOBAL, StageCounts(4, 4), [layout.EXACT_GROUPS],
                 digests=True)
    return {"image": (np.concatenate(x_img), img_keys, ph),
            "text": (np.concatenate(x_txt), txt_keys, None)}


def test_ranges_are_partitions_and_decisions_match_the_reference(tmp_path):
    storage = StorageResource(root=str(tmp_path / "root"))
    store = storage.store()
    data = _root(store, np.random.default_rng(4))
    resources = {**default_resources(), "storage": storage}
    run_config = {"ops": {"clusters": {"config": {"k": 4, "min_cluster_size": 4}},
                          "semdedup_plan": {"config": {"min_ranges": 2}},
                          "semdedup_range": {"config": {"workers": 1}}}}
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", SHARDS)
        summary = run_graph(instance, resources, select=SELECT, run_config=run_config, batch=2)
        assert summary.failed == []
        plan = store.read_json(layout.SEMDEDUP_PLAN)
        keys = [r[0] for sp in plan["spaces"].values() for r in sp["ranges"]]
        assert instance.get_dynamic_partitions("semdedup_ranges") == keys
        assert len([k for k in keys if k.startswith("image__r")]) >= 2
        # the plan layer, the ranges two per run (consecutive in plan order), the finishing
        assert summary.runs == 1 + (len(keys) + 1) // 2 + 1
        assert sorted(read_commits(store, "semdedup_range")) == sorted(keys)

        # decisions = the in-memory reference on the same clusters
        table = store.read_table(layout.SEMDEDUP_SCORES, schemas.SEMDEDUP_SCORES)
        assign = store.read_table(layout.CLUSTER_ASSIGNMENTS, schemas.CLUSTER_ASSIGNMENTS)
        cfg = SemDedupConfig()
        for space, (x, space_keys, ph) in data.items():
            a = assign.filter(pl.col("space") == space)
            assert a["key"].to_list() == space_keys
            unique = ~np.isin(space_keys, ["s1i03", "s2t01"])
            want = semdedup_space(x, a["cluster"].to_numpy(), a["distance"].to_numpy(), unique,
                                  cfg, phashes=ph)
            got = table.filter(pl.col("space") == space)
            np.testing.assert_array_equal(got["score"].to_numpy(), want.scores)
            np.testing.assert_array_equal(got["duplicate"].to_numpy(), want.duplicate)
            np.testing.assert_array_equal(got["unconfirmed"].to_numpy(), want.unconfirmed)
            assert got["partner"].to_list() == [space_keys[i] if i >= 0 else None
                                                for i in want.partner]
            assert want.duplicate.sum() > 0
        assert table.filter(pl.col("space") == "image")["unconfirmed"].any()

        # status: one partition per planned range (a tryout saw "1 materialized" for 8
        # unscored ranges, and a withdrawn plan still counted as materialized)
        from mm_assets.status import asset_statuses

        def status():
            return {a.asset: (a.total, a.done) for a in asset_statuses(
                instance, store, ["semdedup_plan", "semdedup_range"])}
        assert status() == {"semdedup_plan": (1, 1), "semdedup_range": (len(keys), len(keys))}
        store.rm(layout.commit("semdedup_range", keys[0]))
        assert status()["semdedup_range"] == (len(keys), len(keys) - 1)
        run_graph(instance, resources, select=["semdedup_range"], missing_only=True)

        # --missing: every range of the current plan is committed, so none runs again
        again = run_graph(instance, resources, select=["semdedup_range"], missing_only=True)
        assert again.runs == 0 and again.failed == []

        # a re-clustering withdraws the plan and its partitions: semdedup refuses
        run_graph(instance, resources, select=["clusters"],
                  run_config={"ops": {"clusters": {"config": {"k": 3, "min_cluster_size": 4}}}})
        assert instance.get_dynamic_partitions("semdedup_ranges") == []
        assert not store.exists(layout.SEMDEDUP_PLAN)
        assert read_commits(store, "semdedup_range") == {}
        assert status() == {"semdedup_plan": (1, 0), "semdedup_range": (0, 0)}
        refused = run_graph(instance, resources, select=["semdedup"])
        assert len(refused.failed) == 1 and "no SemDeDup range plan" in refused.failed[0]
        # ranges without a plan: a clear error naming semdedup_plan, not a run of nothing
        with pytest.raises(NothingIngested, match="select semdedup_plan"):
            run_graph(instance, resources, select=["semdedup_range"])



def test_backfill_selects_range_partitions():
    from mm_assets.backfill import AssetState, select_keys

    keys = ["image__r0000__pab", "image__r0001__pab", "text__r0000__pab"]
    st = [AssetState("semdedup_range", keys, {"image__r0000__pab"}, set(), "semdedup_ranges")]
    assert select_keys(st, "all", False) == keys
    assert select_keys(st, "image__*", True) == ["image__r0001__pab"]
    assert select_keys(st, "text__r0000__pab", False) == ["text__r0000__pab"]
