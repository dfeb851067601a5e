"""Eval results through the edges: ``mm-assets eval record|compare|digest``, the
``eval_results`` and ``ablations`` assets, and ``eval_results_sensor`` (a dropped results file
is recorded once, also when re-uploaded)."""

import json
import os

import pytest
from dagster import AssetKey, build_sensor_context, instance_for_test, materialize
from eval_roots import build_mixtures, build_root, lm_eval_json, lmms_eval_json, vlmeval_acc_csv
from typer.testing import CliRunner

from mm_assets.cli import app
from mm_assets.core import layout
from mm_assets.core.evals.record import mixture_digest, read_results
from resources.storage import StorageResource


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("evals_cli") / "root"
    store = build_root(root)
    with instance_for_test() as instance:
        build_mixtures(store, instance)
        yield {"store": store, "root": str(root), "instance": instance,
               "dir": tmp_path_factory.mktemp("files"),
               "storage": StorageResource(root=str(root))}


def _cli(*args):
    return CliRunner().invoke(app, list(args))


def test_cli_record_compare_digest(env, monkeypatch):
    monkeypatch.delenv("MM_ASSETS_ROOT", raising=False)
    root, d = env["root"], env["dir"]
    files = {"baseline_raw": 0.60, "text_mm_1to3": 0.68, "ppl_deciles_0_2": 0.55,
             "ppl_deciles_3_5": 0.63}
    for m, v in files.items():
        (d / f"{m}.json").write_bytes(lm_eval_json({"arc_easy": v}))
        res = _cli("eval", "record", "--mixture", m, "--results", str(d / f"{m}.json"),
                   "--model-run", f"run-{m}", "--notes", "cli", "--root", root)
        assert res.exit_code == 0, res.output
        assert "recorded 2 metric(s) (lm-eval-harness)" in res.output
    (d / "ov_MMBench_DEV_EN_acc.csv").write_bytes(vlmeval_acc_csv({"dev": (0.7, 0.8, 0.6)}))
    res = _cli("eval", "record", "--mixture", "text_mm_1to3", "--results",
               str(d / "ov_MMBench_DEV_EN_acc.csv"), "--results",
               str(d / "text_mm_1to3.json"), "--root", root)
    assert res.exit_code == 0, res.output
    assert "recorded 3 metric(s) (vlmevalkit)" in res.output
    assert "already recorded, nothing written" in res.output
    # refusals: one line each
    res = _cli("eval", "record", "--mixture", "curated_all", "--results",
               str(d / "baseline_raw.json"), "--root", root)
    assert res.exit_code == 2 and "error: mixture 'curated_all' is not built" in res.output
    res = _cli("eval", "record", "--mixture", "baseline_raw", "--results",
               str(d / "text_mm_1to3.json"), "--digest", "0123456789ab", "--root", root)
    assert res.exit_code == 1 and "stale: the results are for mixtures[baseline_raw] digest " \
        "0123456789ab" in res.output
    res = _cli("eval", "digest", "--mixture", "ppl_deciles_3_5", "--root", root)
    assert res.output.strip() == mixture_digest(env["store"], "ppl_deciles_3_5")
    # compare: text and HTML
    out = d / "ablations.html"
    res = _cli("eval", "compare", "--baseline", "baseline_raw", "--out", str(out), "--root", root)
    assert res.exit_code == 0, res.output
    assert "0.68 (n=1, +0.08)" in res.output and "0.55 (n=1, -0.05)" in res.output
    assert "ratio={'multimodal': 3, 'text': 1}" in res.output
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 2 and "0.63 (n=1, +0.03)" in page
    res = _cli("eval", "compare", "--baseline", "nobody", "--root", root)
    assert res.exit_code == 2 and "baseline 'nobody' has no eval results" in res.output


def test_assets_record_and_compare(env):
    store, d = env["store"], env["dir"]
    (d / "results.json").write_bytes(lmms_eval_json(1500.0, 350.0, 0.6))
    cfg = {"ops": {"eval_results": {"config": {"files": [str(d / "results.json")],
                                               "model_run": "asset-run"}}}}
    from mm_assets.assets.evals import ablations, eval_results

    res = materialize([eval_results], partition_key="baseline_raw",
                      instance=env["instance"], resources={"storage": env["storage"]},
                      run_config=cfg)
    assert res.success
    [mat] = res.asset_materializations_for_node("eval_results")
    meta = mat.metadata
    assert meta["recorded_now"].value == 1 and meta["runs_stale"].value == 0
    assert meta["mixture_digest"].value == mixture_digest(store, "baseline_raw")
    assert "mme_cognition_score,none" in meta["primary_metrics"].value
    rows = read_results(store, ["baseline_raw"])
    assert set(rows.filter(rows["model_run"] == "asset-run")["benchmark"]) == {"mme", "gqa"}
    res = materialize([ablations], instance=env["instance"],
                      resources={"storage": env["storage"]},
                      run_config={"ops": {"ablations": {"config": {"baseline": "baseline_raw"}}}})
    assert res.success
    meta = env["instance"].get_latest_materialization_event(
        AssetKey("ablations")).asset_materialization.metadata
    assert "| baseline_raw (baseline) |" in meta["table"].value
    assert meta["report"].value == store.url(layout.ABLATIONS_HTML)
    assert any(k.startswith("plot mme") for k in meta)
    assert "<table>" in store.read_bytes(layout.ABLATIONS_HTML).decode()


def test_sensor_records_a_dropped_file_once(env):
    from mm_assets.definitions import defs
    from sensors.new_evals import eval_results_sensor

    store, instance = env["store"], env["instance"]
    job = defs.resolve_job_def("eval_results_job")
    cursor, run_keys = None, set()

    def tick():
        nonlocal cursor
        ctx = build_sensor_context(instance=instance, cursor=cursor,
                                   resources={"storage": env["storage"]})
        result = eval_results_sensor(ctx)
        cursor = result.cursor
        new = [r for r in result.run_requests if r.run_key not in run_keys]  # daemon: once
        for r in new:
            run_keys.add(r.run_key)
            assert job.execute_in_process(run_config=r.run_config, partition_key=r.partition_key,
                                          instance=instance,
                                          resources={"storage": env["storage"]}).success
        return result.run_requests

    drop = store.path(layout.incoming_evals("ppl_deciles_3_5")) + "/job7/results_a.json"
    os.makedirs(os.path.dirname(drop))
    data = lm_eval_json({"piqa": 0.77})
    with open(drop, "wb") as f:
        f.write(data)
    other = store.path(layout.incoming_evals("not_a_recipe")) + "/results.json"
    os.makedirs(os.path.dirname(other))
    with open(other, "wb") as f:
        f.write(data)
    assert tick() == []  # seen once: not yet stable
    [req] = tick()
    assert req.partition_key == "ppl_deciles_3_5"
    assert req.run_config["ops"]["eval_results"]["config"]["files"] == [drop]

    def piqa():
        df = read_results(store, ["ppl_deciles_3_5"])
        return df.filter(df["benchmark"] == "piqa")

    assert piqa().height == 2 and piqa()["file_id"].n_unique() == 1
    assert tick() == []  # taken: nothing more
    # re-upload of the identical bytes: the same run key (the daemon skips it), one record
    with open(drop, "wb") as f:
        f.write(data)
    st = os.stat(drop)
    os.utime(drop, (st.st_atime + 5, st.st_mtime + 5))
    tick()
    [again] = tick()
    assert again.run_key == req.run_key
    job.execute_in_process(run_config=again.run_config, partition_key=again.partition_key,
                           instance=instance, resources={"storage": env["storage"]})
    assert piqa().height == 2  # still one record
    # a changed file is a new run and a new record
    with open(drop, "wb") as f:
        f.write(lm_eval_json({"piqa": 0.79}))
    os.utime(drop, (st.st_atime + 10, st.st_mtime + 10))
    tick()
    [changed] = tick()
    assert changed.run_key != req.run_key
    assert piqa()["file_id"].n_unique() == 2
    assert "not_a_recipe" not in json.dumps(json.loads(cursor)["taken"])
