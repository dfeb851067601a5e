"""Results files of lm-evaluation-harness, lmms-eval and VLMEvalKit, read to the same rows."""

import pytest
from eval_roots import lm_eval_json, lmms_eval_json, vlmeval_acc_csv, vlmeval_score_csv

from mm_assets.core.evals.formats import (
    LM_EVAL,
    LMMS_EVAL,
    VLMEVALKIT,
    ResultsFormatError,
    parse_results,
    split_vlmeval_name,
)


def test_lm_eval_harness_json():
    p = parse_results(lm_eval_json({"arc_easy": 0.71, "hellaswag": 0.43}, stderr=0.02),
                      "out/__ckpt__run1/results_2024-05-01T10-00-00.json")
    assert p.format == LM_EVAL and p.model == "/ckpt/run1" and p.date.startswith("2023-11-14")
    got = {(m.benchmark, m.metric): (m.value, m.stderr, m.primary) for m in p.metrics}
    assert got[("arc_easy", "acc,none")] == (0.71, 0.02, True)
    assert got[("arc_easy", "acc_norm,none")] == (pytest.approx(0.66), 0.02, False)
    assert got[("hellaswag", "acc,none")] == (0.43, 0.02, True)
    assert len(p.metrics) == 4  # alias and stderr keys are no metrics
    assert not p.mixture_digest


def test_lmms_eval_json_skips_na_and_picks_primary():
    p = parse_results(lmms_eval_json(1400.5, 300.25, 0.61), "results.json")
    assert p.format == LMMS_EVAL and p.date == "20250101_120000"
    got = {(m.benchmark, m.metric): m for m in p.metrics}
    mme = got[("mme", "mme_cognition_score,none")]
    assert mme.value == 300.25 and mme.stderr is None and mme.primary  # first numeric metric
    assert not got[("mme", "mme_percetion_score,none")].primary
    gqa = got[("gqa", "exact_match,none")]
    assert (gqa.value, gqa.stderr, gqa.primary) == (0.61, 0.004, True)


def test_vlmevalkit_acc_csv():
    data = vlmeval_acc_csv({"dev": (0.781, 0.8, 0.7)})
    p = parse_results(data, "/x/llava-ov-run3/llava-ov-run3_MMBench_DEV_EN_acc.csv")
    assert p.format == VLMEVALKIT and p.model == "llava-ov-run3"
    got = {(m.benchmark, m.metric): (m.value, m.primary) for m in p.metrics}
    assert got == {("MMBench_DEV_EN", "Overall"): (0.781, True),
                   ("MMBench_DEV_EN", "CP"): (0.8, False),
                   ("MMBench_DEV_EN", "FP-S"): (0.7, False)}
    two = parse_results(vlmeval_acc_csv({"dev": (0.5, 0.6, 0.4), "test": (0.55, 0.6, 0.5)}),
                        "m_MMBench_DEV_EN_acc.csv")
    prim = [m for m in two.metrics if m.primary]
    assert [(m.metric, m.value) for m in prim] == [("Overall[dev]", 0.5)]
    assert {m.metric for m in two.metrics} >= {"Overall[test]", "CP[dev]"}


def test_vlmevalkit_score_csv_overall_row():
    p = parse_results(vlmeval_score_csv((64.2, 33.9, 38.5)), "my_model_HallusionBench_score.csv")
    assert (p.model, p.metrics[0].benchmark) == ("my_model", "HallusionBench")
    [prim] = [m for m in p.metrics if m.primary]
    assert (prim.metric, prim.value) == ("aAcc[Overall]", 64.2)
    assert len(p.metrics) == 9


def test_file_names_split_into_model_and_benchmark():
    assert split_vlmeval_name("Qwen2-VL-2B_MMMU_DEV_VAL_acc.csv") == ("Qwen2-VL-2B", "MMMU_DEV_VAL")
    assert split_vlmeval_name("llava_v1.5_7b_POPE_score.csv") == ("llava_v1.5_7b", "POPE")
    assert split_vlmeval_name("ab_cd_NewBench_acc.csv", "ab_cd") == ("ab_cd", "NewBench")
    assert split_vlmeval_name("m_NewBench_acc.csv") == ("m", "NewBench")


@pytest.mark.parametrize("data, name, msg", [
    (b'{"foo": 1}', "r.json", "no 'results'"),
    (b'{"results": {"t": {"alias": "t"}}}', "r.json", "no numeric metric"),
    (b'{"results": ', "r.json", "not valid JSON"),
    (b'"split"\n"dev"\n', "m_X_acc.csv", "no numeric score"),
    (b"PK\x03\x04", "m_X_acc.xlsx", "not a readable XLSX workbook"),
    (b"hello", "notes.txt", "neither"),
])
def test_unsupported_files_are_named(data, name, msg):
    with pytest.raises(ResultsFormatError, match=msg) as e:
        parse_results(data, name)
    assert name in str(e.value)


def test_a_vlmevalkit_xlsx_reads_like_its_csv():
    """VLMEvalKit writes its score tables as CSV or XLSX (pandas): the same sheet gives the
    same metrics from either."""
    import io

    import openpyxl

    rows = [["split", "Overall", "CP", "FP-S"], ["dev", 0.7512, 0.8, 0.6],
            ["test", 0.7403, 0.79, 0.58]]
    wb = openpyxl.Workbook()
    for r in rows:
        wb.active.append(r)
    buf = io.BytesIO()
    wb.save(buf)
    csv_text = "\n".join(",".join(str(v) for v in r) for r in rows) + "\n"
    from_xlsx = parse_results(buf.getvalue(), "MyVLM_MMBench_DEV_EN_acc.xlsx")
    from_csv = parse_results(csv_text.encode(), "MyVLM_MMBench_DEV_EN_acc.csv")
    key = [(m.benchmark, m.metric, m.value, m.primary) for m in from_xlsx.metrics]
    assert key == [(m.benchmark, m.metric, m.value, m.primary) for m in from_csv.metrics]
    assert ("MMBench_DEV_EN", "Overall[dev]", 0.7512, True) in key and from_xlsx.model == "MyVLM"
