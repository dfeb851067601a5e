"""Results recorded against mixture content digests: 4 mixtures in every supported format,
the comparison equals the files, recording twice records once, stale results refused and kept
as history after a recipe change."""

import polars as pl
import pytest
from dagster import instance_for_test
from eval_roots import (
    build_mixtures,
    build_root,
    lm_eval_json,
    lmms_eval_json,
    vlmeval_acc_csv,
    vlmeval_score_csv,
)

from mm_assets.core import layout
from mm_assets.core.evals.compare import (
    CompareConfig,
    compare,
    recipe_params,
    render_html,
    render_text,
)
from mm_assets.core.evals.record import (
    MixtureNotBuilt,
    StaleResults,
    mixture_digest,
    read_results,
    record_results,
)

#: per mixture: the arc_easy acc of each lm-eval run, MME cognition (lmms-eval), MMBench
#: Overall (VLMEvalKit acc CSV), HallusionBench aAcc (VLMEvalKit score CSV)
SCORES = {"baseline_raw": ([0.60, 0.64], 300.0, 0.70, 50.0),
          "text_mm_1to3": ([0.66], 320.5, 0.72, 52.5),
          "ppl_deciles_0_2": ([0.58, 0.62, 0.63], 280.0, 0.69, 49.0),
          "ppl_deciles_3_5": ([0.65], 310.0, 0.75, 55.0)}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    store = build_root(tmp_path_factory.mktemp("evals") / "root")
    files = tmp_path_factory.mktemp("results")
    with instance_for_test() as instance:
        build_mixtures(store, instance)
        written = {}
        for m, (arcs, mme, mmb, hal) in SCORES.items():
            paths = []
            for i, a in enumerate(arcs):
                p = files / m / f"results_2024-05-0{i + 1}T10-00-00.json"
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_bytes(lm_eval_json({"arc_easy": a}, date=1.7e9 + i))
                paths.append(p)
            p = files / m / "results.json"
            p.write_bytes(lmms_eval_json(1400.0, mme, 0.5))
            paths.append(p)
            p = files / m / f"run-{m}_MMBench_DEV_EN_acc.csv"
            p.write_bytes(vlmeval_acc_csv({"dev": (mmb, 0.8, 0.6)}))
            paths.append(p)
            p = files / m / f"run-{m}_HallusionBench_score.csv"
            p.write_bytes(vlmeval_score_csv((hal, 20.0, 10.0)))
            paths.append(p)
            written[m] = paths
        yield {"store": store, "files": written, "instance": instance, "dir": files}


def test_record_four_mixtures_and_compare_equals_the_files(built):
    store = built["store"]
    for m, paths in built["files"].items():
        for p in paths:
            r = record_results(store, m, str(p), model_run=f"{m}-run", notes="ablation")
            assert r.status == "recorded" and r.digest == mixture_digest(store, m), r.line()
            assert store.exists(r.path)
    df = read_results(store)
    assert df["current"].all() and set(df["mixture"]) == set(SCORES)
    c = compare(store, CompareConfig(baseline="baseline_raw"))
    assert c.mixtures[0] == "baseline_raw" and set(c.mixtures) == set(SCORES)
    base_arc = sum(SCORES["baseline_raw"][0]) / 2
    for m, (arcs, mme, mmb, hal) in SCORES.items():
        arc = c.cell(m, "arc_easy", "acc,none")
        assert arc["mean"] == pytest.approx(sum(arcs) / len(arcs))
        assert arc["n_runs"] == len(arcs)
        assert arc["diff"] == pytest.approx(sum(arcs) / len(arcs) - base_arc)
        assert sorted(arc["values"]) == pytest.approx(sorted(arcs))
        assert c.cell(m, "mme", "mme_cognition_score,none")["mean"] == mme
        assert c.cell(m, "MMBench_DEV_EN", "Overall")["mean"] == mmb
        assert c.cell(m, "HallusionBench", "aAcc[Overall]")["mean"] == hal
        assert c.cell(m, "gqa", "exact_match,none")["diff"] == 0.0
    assert c.cell("text_mm_1to3", "mme", "mme_cognition_score,none")["diff"] == 20.5
    assert c.params["text_mm_1to3"]["ratio"] == {"text": 1, "multimodal": 3}
    assert c.params["ppl_deciles_0_2"]["deciles"] == [0, 2]
    assert c.params["baseline_raw"]["sources"] == "curated"
    text = render_text(c)
    assert "0.62 (n=2)" in text and "0.61 (n=3, -0.01)" in text
    page = render_html(c, store.root, {"arc_easy (acc,none)": b"\x89PNG"})
    assert "ppl_deciles_3_5" in page and "data:image/png;base64," in page


def test_recording_twice_records_once(built):
    store = built["store"]
    p = built["files"]["text_mm_1to3"][0]
    r1 = record_results(store, "text_mm_1to3", str(p))
    before = read_results(store).height
    r2 = record_results(store, "text_mm_1to3", str(p), model_run="another id")
    assert r1.status == r2.status == "already" and r1.path == r2.path
    assert "already recorded" in r2.line()
    assert read_results(store).height == before
    # the same bytes under another name are the same file
    copy = built["dir"] / "copy.json"
    copy.write_bytes(p.read_bytes())
    assert record_results(store, "text_mm_1to3", str(copy)).status == "already"


def test_unbuilt_mixture_is_refused(built):
    p = built["files"]["baseline_raw"][0]
    with pytest.raises(MixtureNotBuilt, match="'curated_all' is not built"):
        record_results(built["store"], "curated_all", str(p))


def test_claims_are_checked(built):
    store = built["store"]
    cur = mixture_digest(store, "ppl_deciles_3_5")
    f = built["dir"] / "claimed.json"
    f.write_bytes(lm_eval_json({"arc_easy": 0.7}, claim={"mixture": "baseline_raw",
                                                         "mixture_digest": cur}))
    with pytest.raises(StaleResults, match="names mixture 'baseline_raw'"):
        record_results(store, "ppl_deciles_3_5", str(f))
    f.write_bytes(lm_eval_json({"arc_easy": 0.7}))
    with pytest.raises(StaleResults, match="too short"):
        record_results(store, "ppl_deciles_3_5", str(f), digest="abc")
    f.write_bytes(lm_eval_json({"arc_easy": 0.7}, claim={"mixture": "ppl_deciles_3_5",
                                                         "mixture_digest": cur[:12]}))
    assert record_results(store, "ppl_deciles_3_5", str(f)).status == "recorded"


def test_rebuild_same_recipe_keeps_digest_changed_recipe_makes_results_stale(built):
    store, instance = built["store"], built["instance"]
    old = mixture_digest(store, "baseline_raw")
    build_mixtures(store, instance, ["baseline_raw"])  # byte-identical rebuild
    assert mixture_digest(store, "baseline_raw") == old
    recipe = layout.recipe("baseline_raw.yaml")
    store.write_bytes(recipe, store.read_bytes(recipe).replace(b"seed: 0", b"seed: 7"))
    build_mixtures(store, instance, ["baseline_raw"])
    new = mixture_digest(store, "baseline_raw")
    assert new != old
    # a file trained on the old build is refused, with both digests named
    f = built["dir"] / "late.json"
    f.write_bytes(lm_eval_json({"arc_easy": 0.9}, claim={"mixture_digest": old}))
    with pytest.raises(StaleResults, match=f"digest {old[:12]}.*now {new[:12]}"):
        record_results(store, "baseline_raw", str(f))
    with pytest.raises(StaleResults):
        record_results(store, "baseline_raw", str(built["files"]["text_mm_1to3"][0]) + "x",
                       data=b'{"results": {"t": {"acc,none": 1}}}', digest=old)
    # old results stay attached to the old digest, as history, never averaged in
    df = read_results(store, ["baseline_raw"])
    assert set(df["mixture_digest"]) == {old} and not df["current"].any()
    assert store.exists(layout.evals_digest_dir("baseline_raw", old))
    with pytest.raises(ValueError, match="baseline 'baseline_raw' has no eval results"):
        compare(store, CompareConfig(baseline="baseline_raw"))
    # with another baseline, the all-stale mixture is still a row: its stale runs, no cells
    c = compare(store, CompareConfig(baseline="ppl_deciles_3_5"))
    assert "baseline_raw" in c.mixtures and c.stale_runs["baseline_raw"] == 5
    assert c.cell("baseline_raw", "arc_easy", "acc,none") is None
    # new results for the new build
    g = built["dir"] / "new.json"
    g.write_bytes(lm_eval_json({"arc_easy": 0.5}, claim={"mixture_digest": new}))
    assert record_results(store, "baseline_raw", str(g)).digest == new
    c = compare(store, CompareConfig(baseline="baseline_raw"))
    assert c.cell("baseline_raw", "arc_easy", "acc,none")["mean"] == 0.5
    assert c.cell("baseline_raw", "arc_easy", "acc,none")["n_runs"] == 1
    assert c.stale_runs["baseline_raw"] == 5  # 2 lm-eval + lmms + 2 VLMEvalKit files
    assert c.cell("ppl_deciles_3_5", "arc_easy", "acc,none")["diff"] == pytest.approx(
        pl.Series([0.65, 0.7]).mean() - 0.5)


def test_rows_show_the_upstream_curation_settings_of_the_build(built):
    """The mixtures asset records the curation settings in force (lineage.json ``settings``);
    each comparison row shows them beside the recipe's parameters."""
    store = built["store"]
    lineage = store.read_json(layout.mixture_lineage("text_mm_1to3"))
    assert "settings" in lineage["upstream"]  # written by the asset (empty: no semdedup run)
    lineage["upstream"]["settings"] = {"semdedup.image_epsilon": 0.15,
                                       "curated.text_filters": "mojibake"}
    store.write_json(layout.mixture_lineage("text_mm_1to3"), lineage)
    params = recipe_params(store, "text_mm_1to3")
    assert params["semdedup.image_epsilon"] == 0.15
    assert params["curated.text_filters"] == "mojibake"
