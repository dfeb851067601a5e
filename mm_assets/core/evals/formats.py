"""Readers of the published results files of the common evaluation harnesses.

Supported (detected from the content, then the file name):

- **lm-evaluation-harness** and **lmms-eval** ``results_*.json`` / ``results.json``: a JSON
  object whose ``"results"`` maps each task (and group) to ``{"metric,filter": value,
  "metric_stderr,filter": stderr, "alias": ...}`` (v0.4+; v0.3 files spell ``"acc"`` /
  ``"acc_stderr"`` without a filter). ``"config"`` (``model``, ``model_args``),
  ``"model_name"`` and ``"date"`` (lm-eval: a Unix time; lmms-eval: ``YYYYMMDD_HHMMSS``) are
  read when present; a file with ``"lmms_eval_version"`` is labelled ``lmms-eval``. A
  non-numeric value (``"N/A"`` stderr, an alias, a per-category dict) is skipped. Metric names
  are kept exactly as the file spells them (``acc,none``, ``exact_match,flexible-extract``).
- **VLMEvalKit** per-benchmark score CSV ``{model}_{benchmark}_acc.csv`` / ``_score.csv``
  (``report_acc``: a ``split`` column, then ``Overall`` and one column per category, one row per
  split; score files such as POPE / HallusionBench / MME likewise, with or without a label
  column). One value per (row, numeric column): the metric is the column name, suffixed
  ``[row label]`` when the file has several rows. An ``.xlsx`` (VLMEvalKit's other output; the
  first sheet, read with openpyxl, values not formulas) is read like the CSV.

The **primary** metric of a benchmark (the one ``eval compare`` puts in its table): lm-eval:
the first of ``acc,none``, ``acc_norm,none``, ``exact_match,*``, else the task's first numeric
metric; VLMEvalKit: ``Overall`` of the first row, else the first numeric column of a row
labelled ``Overall``, else the first numeric value.

A results file may name the mixture and the mixture content digest its model was trained on:
a top-level ``"mm_assets": {"mixture": NAME, "mixture_digest": HEX}`` in a JSON file (training
jobs can add it; ``mm-assets eval record --digest HEX`` says the same for any file). Recording
checks that claim (see :mod:`mm_assets.core.evals.record`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

LM_EVAL, LMMS_EVAL, VLMEVALKIT = "lm-eval-harness", "lmms-eval", "vlmevalkit"

#: VLMEvalKit dataset names (longest match wins when splitting ``{model}_{benchmark}``)
VLMEVAL_DATASETS = (
    "MMBench_DEV_EN", "MMBench_DEV_CN", "MMBench_TEST_EN", "MMBench_TEST_CN", "MMBench_DEV_EN_V11",
    "MMBench_DEV_CN_V11", "MMBench_TEST_EN_V11", "MMBench_TEST_CN_V11", "MMBench", "MMBench_CN",
    "CCBench", "SEEDBench_IMG", "SEEDBench2", "SEEDBench2_Plus", "MMMU_DEV_VAL", "MMMU_TEST",
    "AI2D_TEST", "AI2D_TEST_NO_MASK", "RealWorldQA", "ChartQA_TEST", "DocVQA_VAL", "DocVQA_TEST",
    "InfoVQA_VAL", "InfoVQA_TEST", "TextVQA_VAL", "GQA_TestDev_Balanced", "POPE",
    "HallusionBench", "MME", "MMStar", "MathVista_MINI", "OCRBench", "ScienceQA_VAL",
    "ScienceQA_TEST", "MMVet", "LLaVABench", "MMT-Bench_VAL", "MMT-Bench_ALL", "BLINK",
    "OCRVQA_TEST", "OCRVQA_TESTCORE", "COCO_VAL", "A-Bench_VAL", "MMLongBench_DOC", "VCR_EN_EASY_ALL",
)
VLMEVAL_SUFFIXES = ("_acc", "_score", "_result", "_results")
LM_PRIMARY = ("acc,none", "acc_norm,none", "acc", "acc_norm")


class ResultsFormatError(ValueError):
    """A results file in no supported format (the message names the file and why)."""


@dataclass(frozen=True)
class Metric:
    benchmark: str
    metric: str
    value: float
    stderr: float | None = None
    primary: bool = False


@dataclass
class ParsedResults:
    """One results file, normalised.

    Attributes:
        format: ``lm-eval-harness``, ``lmms-eval`` or ``vlmevalkit``.
        model: the model the file names (``model_name``, ``config.model_args`` or the VLMEvalKit
            file-name prefix); empty when it names none.
        date: when the harness ran (UTC ISO-8601), empty when the file does not say.
        mixture / mixture_digest: what the file claims it was trained on (or empty).
        metrics: in file order.
    """

    format: str
    model: str = ""
    date: str = ""
    mixture: str = ""
    mixture_digest: str = ""
    metrics: list[Metric] = field(default_factory=list)


def _number(v) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        return None
    try:
        x = float(v)
    except ValueError:
        return None
    return x if math.isfinite(x) else None


def _stderr_key(key: str) -> str:
    name, sep, filt = key.partition(",")
    return f"{name}_stderr{sep}{filt}"


def _lm_primary(metrics: list[str]) -> str | None:
    for want in LM_PRIMARY:
        if want in metrics:
            return want
    for m in metrics:
        if m.startswith("exact_match,"):
            return m
    return metrics[0] if metrics else None


def parse_lm_eval(obj: dict, name: str = "") -> ParsedResults:
    """An lm-evaluation-harness / lmms-eval results object (see the module doc).

    Raises:
        ResultsFormatError: no ``results`` mapping, or no numeric metric in it.
    """
    res = obj.get("results")
    if not isinstance(res, dict):
        raise ResultsFormatError(f"{name}: no 'results' mapping of task -> metrics")
    cfg = obj.get("config") if isinstance(obj.get("config"), dict) else {}
    out = ParsedResults(LMMS_EVAL if "lmms_eval_version" in obj else LM_EVAL)
    out.model = str(obj.get("model_name") or cfg.get("model_args") or cfg.get("model") or "")
    date = obj.get("date")  # lm-eval: time.time(); lmms-eval: a "YYYYMMDD_HHMMSS" string
    if isinstance(date, (int, float)) and not isinstance(date, bool):
        out.date = datetime.fromtimestamp(date, UTC).isoformat(timespec="seconds")
    elif date:
        out.date = str(date)
    claim = obj.get("mm_assets") if isinstance(obj.get("mm_assets"), dict) else {}
    out.mixture, out.mixture_digest = (str(claim.get("mixture") or ""),
                                       str(claim.get("mixture_digest") or ""))
    for task, metrics in res.items():
        if not isinstance(metrics, dict):
            continue
        keys = [k for k in metrics if k != "alias" and "_stderr" not in k
                and _number(metrics[k]) is not None]
        primary = _lm_primary(keys)
        for k in keys:
            out.metrics.append(Metric(str(task), k, _number(metrics[k]),
                                      _number(metrics.get(_stderr_key(k))), k == primary))
    if not out.metrics:
        raise ResultsFormatError(f"{name}: 'results' holds no numeric metric")
    return out


def split_vlmeval_name(file_name: str, model_hint: str = "") -> tuple[str, str]:
    """``(model, benchmark)`` from a VLMEvalKit file name ``{model}_{benchmark}_acc.csv``:
    the model is ``model_hint`` when the name starts with it, else the name minus the longest
    known dataset name it ends with, else everything before the first ``_``."""
    stem = re.sub(r"\.(csv|xlsx|tsv)$", "", file_name.rsplit("/", 1)[-1], flags=re.IGNORECASE)
    for suf in VLMEVAL_SUFFIXES:
        if stem.endswith(suf):
            stem = stem[: -len(suf)]
            break
    if model_hint and stem.startswith(model_hint + "_"):
        return model_hint, stem[len(model_hint) + 1:]
    for ds in sorted(VLMEVAL_DATASETS, key=len, reverse=True):
        if stem.endswith("_" + ds) or stem == ds:
            return stem[: -len(ds)].rstrip("_"), ds
    model, sep, bench = stem.partition("_")
    return (model, bench) if sep else ("", stem)


def parse_vlmeval_csv(text: str, file_name: str, model_hint: str = "") -> ParsedResults:
    """A VLMEvalKit score CSV (see the module doc).

    Raises:
        ResultsFormatError: no header, no rows, or no numeric value.
    """
    rows = list(csv.reader(io.StringIO(text)))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if len(rows) < 2:
        raise ResultsFormatError(f"{file_name}: a VLMEvalKit CSV needs a header and a row")
    header, body = rows[0], rows[1:]
    model, bench = split_vlmeval_name(file_name, model_hint)
    out = ParsedResults(VLMEVALKIT, model=model)
    numeric = [j for j in range(len(header))
               if any(j < len(r) and _number(r[j]) is not None for r in body)]
    labels = [j for j in range(len(header)) if j not in numeric]
    lab = labels[0] if labels else None
    cells = []
    for i, r in enumerate(body):
        label = r[lab] if lab is not None and lab < len(r) else str(i)
        for j in numeric:
            v = _number(r[j]) if j < len(r) else None
            if v is not None:
                name = header[j] if len(body) == 1 else f"{header[j]}[{label}]"
                cells.append((i, label, header[j], name, v))
    if not cells:
        raise ResultsFormatError(f"{file_name}: no numeric score in the CSV")
    pick = (next((c for c in cells if c[0] == 0 and c[2] == "Overall"), None)
            or next((c for c in cells if c[1] == "Overall"), None) or cells[0])
    out.metrics = [Metric(bench, c[3], c[4], None, c is pick) for c in cells]
    return out


def xlsx_to_csv(data: bytes, name: str) -> str:
    """The first sheet of a VLMEvalKit ``.xlsx`` score file as CSV text (openpyxl, values not
    formulas).

    Raises:
        ResultsFormatError: not a readable XLSX workbook.
    """
    import openpyxl

    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as e:  # zipfile.BadZipFile, KeyError, InvalidFileException, ...
        raise ResultsFormatError(f"{name}: not a readable XLSX workbook ({e})") from e
    out = io.StringIO()
    writer = csv.writer(out)
    for row in wb.worksheets[0].iter_rows(values_only=True):
        writer.writerow(["" if v is None else v for v in row])
    wb.close()
    return out.getvalue()


def parse_results(data: bytes, file_name: str, model_hint: str = "") -> ParsedResults:
    """Any supported results file from its bytes (format from the content, then the name).

    Args:
        data: the file's bytes.
        file_name: its name (or path/URL): the VLMEvalKit model and benchmark come from it.
        model_hint: the VLMEvalKit model name (default: from the file name).

    Raises:
        ResultsFormatError: not a supported format (the message names the file).
    """
    name = file_name.rsplit("/", 1)[-1]
    if name.lower().endswith(".xlsx"):
        return parse_vlmeval_csv(xlsx_to_csv(data, name), name, model_hint)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ResultsFormatError(f"{name}: not UTF-8 text ({e})") from e
    if text.lstrip().startswith("{"):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise ResultsFormatError(f"{name}: not valid JSON ({e})") from e
        return parse_lm_eval(obj, name)
    if name.lower().endswith(".csv"):
        return parse_vlmeval_csv(text, name, model_hint)
    raise ResultsFormatError(f"{name}: neither an lm-eval/lmms-eval results JSON nor a "
                             f"VLMEvalKit score CSV")
