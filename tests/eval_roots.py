"""A small root with real mixtures built by the ``mixtures`` asset (no models run): 80 curated
samples (1 in 4 text-only, perplexity deciles 0-9), no clusters, four root recipes; and
results files written to the published formats of lm-evaluation-harness, lmms-eval and
VLMEvalKit.

Import from a test module: ``from eval_roots import build_root, build_mixtures, ...``.
"""

from __future__ import annotations

import io
import json

import numpy as np
import polars as pl
from dagster import materialize
from PIL import Image

from mm_assets.core import layout, schemas
from mm_assets.core.records import Sample
from mm_assets.core.shards import write_samples
from mm_assets.core.storage import Store

RECIPES = {
    "baseline_raw": "name: baseline_raw\nsource: curated\ntotal: 24\nseed: 0\nshard_size: 10\n",
    "text_mm_1to3": "name: text_mm_1to3\nsource: curated\ntotal: 16\n"
                    "ratio: {text: 1, multimodal: 3}\nseed: 0\n",
    "ppl_deciles_0_2": "name: ppl_deciles_0_2\nsource: curated\ndeciles: [0, 2]\nseed: 0\n",
    "ppl_deciles_3_5": "name: ppl_deciles_3_5\nsource: curated\ndeciles: [3, 5]\nseed: 0\n",
}


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _sample(i: int) -> Sample:
    conv = [{"from": "human", "value": f"Question {i}?"},
            {"from": "gpt", "value": f"Answer {i} " + "word " * (i % 5)}]
    meta = {"ppl_decile": i % 10}
    if i % 4 == 0:
        return Sample(f"k{i:04d}", conv, source="gen", metadata=meta)
    conv[0]["value"] = "<image>\n" + conv[0]["value"]
    return Sample(f"k{i:04d}", conv, [_png(i)], ["png"], "gen", meta)


def build_root(path) -> Store:
    """Curated shard, empty cluster table and the four recipes under ``path``."""
    store = Store(str(path))
    with store.open_write(layout.curated_shard("000000")) as f:
        write_samples(f, [_sample(i) for i in range(80)])
    store.write_table(layout.CLUSTER_ASSIGNMENTS,
                      pl.DataFrame([], schema=schemas.CLUSTER_ASSIGNMENTS),
                      schemas.CLUSTER_ASSIGNMENTS)
    for name, text in RECIPES.items():
        store.write_bytes(layout.recipe(f"{name}.yaml"), text.encode())
    return store


def build_mixtures(store: Store, instance, names=tuple(RECIPES)) -> None:
    """Materialize ``mixtures`` for ``names`` (the real asset, one run per recipe)."""
    from mm_assets.assets.mixtures import mixtures
    from resources.storage import StorageResource

    have = set(instance.get_dynamic_partitions("recipes"))
    instance.add_dynamic_partitions("recipes", [n for n in names if n not in have])
    for name in names:
        res = materialize([mixtures], partition_key=name, instance=instance,
                          resources={"storage": StorageResource(root=store.root)})
        assert res.success, name


# ------------------------------------------------------------------ results files
def lm_eval_json(scores: dict[str, float], stderr: float = 0.01, date: float = 1.7e9,
                 claim: dict | None = None) -> bytes:
    """An lm-evaluation-harness v0.4 ``results_*.json``: ``{task: acc}``."""
    obj = {"results": {t: {"alias": t, "acc,none": v, "acc_stderr,none": stderr,
                           "acc_norm,none": v - 0.05, "acc_norm_stderr,none": stderr}
                       for t, v in scores.items()},
           "groups": {}, "configs": {t: {"task": t, "num_fewshot": 0} for t in scores},
           "versions": {t: 1.0 for t in scores}, "n-shot": {t: 0 for t in scores},
           "higher_is_better": {t: {"acc": True, "acc_norm": True} for t in scores},
           "n-samples": {t: {"original": 100, "effective": 100} for t in scores},
           "config": {"model": "hf", "model_args": "pretrained=/ckpt/run1", "batch_size": "8",
                      "device": "cuda:0", "limit": None, "bootstrap_iters": 100000},
           "git_hash": "4a5b6c7", "date": date, "model_name": "/ckpt/run1",
           "model_name_sanitized": "__ckpt__run1", "total_evaluation_time_seconds": "312.5"}
    if claim:
        obj["mm_assets"] = claim
    return json.dumps(obj, indent=2).encode()


def lmms_eval_json(mme_perception: float, mme_cognition: float, gqa: float) -> bytes:
    """An lmms-eval ``results.json`` (MME scores with "N/A" stderrs, GQA exact match)."""
    obj = {"results": {
        "mme": {"alias": "mme", "mme_cognition_score,none": mme_cognition,
                "mme_cognition_score_stderr,none": "N/A",
                "mme_percetion_score,none": mme_perception,
                "mme_percetion_score_stderr,none": "N/A"},
        "gqa": {"alias": "gqa", "exact_match,none": gqa, "exact_match_stderr,none": 0.004}},
        "configs": {"mme": {"task": "mme"}, "gqa": {"task": "gqa"}},
        "versions": {"mme": "Yaml", "gqa": "Yaml"}, "n-shot": {"mme": 0, "gqa": 0},
        "config": {"model": "llava_onevision", "model_args": "pretrained=/ckpt/run2",
                   "batch_size": "1", "device": None},
        "git_hash": "0a1b2c3", "lmms_eval_version": "0.3.0", "date": "20250101_120000"}
    return json.dumps(obj, indent=2).encode()


def vlmeval_acc_csv(split_scores: dict[str, tuple[float, float, float]]) -> bytes:
    """A VLMEvalKit ``{model}_MMBench_DEV_EN_acc.csv`` (``report_acc``: split, Overall, CP,
    FP-S; all fields quoted as VLMEvalKit writes them)."""
    lines = ['"split","Overall","CP","FP-S"']
    lines += [f'"{sp}","{o}","{cp}","{fps}"' for sp, (o, cp, fps) in split_scores.items()]
    return ("\n".join(lines) + "\n").encode()


def vlmeval_score_csv(overall: tuple[float, float, float]) -> bytes:
    """A VLMEvalKit ``{model}_HallusionBench_score.csv`` (split rows, aAcc/fAcc/qAcc)."""
    return ('"split","aAcc","fAcc","qAcc"\n'
            f'"Overall","{overall[0]}","{overall[1]}","{overall[2]}"\n'
            '"VS","60.1","30.2","25.3"\n"VD","55.5","22.2","20.0"\n').encode()
