"""Batched chat-template encoding for perplexity gives exactly the per-sample encoding."""

import json

import numpy as np
import pytest
from transformers import AutoTokenizer

from mm_assets.core.quality.lm import resolve_lm_path
from mm_assets.core.quality.ppl import encode_sample
from mm_assets.core.quality.ppl_encode import assistant_mask, auto_workers, encode_samples
from mm_assets.core.records import Sample


@pytest.fixture(scope="module")
def tok():
    return AutoTokenizer.from_pretrained(resolve_lm_path("smollm2-135m-instruct"))


@pytest.fixture(scope="module")
def samples(shared):
    """60 real LLaVA-Instruct conversations (2-20 turns) and edge cases."""
    path = shared / "llava" / "LLaMA-Factory" / "data" / "llava_instruct_100.json"
    recs = json.loads(path.read_text())[:60]
    out = [Sample(f"llava{i}", r["conversations"]) for i, r in enumerate(recs)]
    return out + [
        Sample("system", [{"from": "system", "value": "Answer briefly."},
                          {"from": "human", "value": "<image>\nWhat is it?"},
                          {"from": "gpt", "value": "A cat."}]),
        Sample("no_turns", []),
        Sample("human_only", [{"from": "human", "value": "Hello?"}]),
        Sample("odd_role", [{"from": "narrator", "value": "Once"},
                            {"from": "gpt", "value": "upon a time."}]),
        Sample("gpt_first", [{"from": "gpt", "value": "I start."},
                             {"from": "human", "value": "ok"}, {"from": "gpt", "value": ""}])]


def _same(ref, new):
    assert len(ref) == len(new)
    for (ids_a, mask_a, tr_a), (ids_b, mask_b, tr_b) in zip(ref, new, strict=True):
        assert ids_a == ids_b
        assert mask_a == mask_b.tolist()
        assert tr_a == tr_b


@pytest.mark.parametrize("max_length", [2048, 48])
def test_batched_encoding_is_identical_to_per_sample(tok, samples, max_length):
    ref = [encode_sample(s, tok, max_length) for s in samples]
    new = encode_samples(samples, tok, max_length, chunk=16)
    _same(ref, new)
    truncated, asst = sum(r[2] for r in ref), sum(sum(r[1]) for r in ref)
    if max_length == 48:
        assert truncated >= 55  # truncation exercised
    else:
        assert truncated == 0 and asst > 5000  # many assistant tokens compared
    assert new[61][0] == [] and new[61][1].shape == (0,)  # no turns: nothing to score


def test_worker_processes_give_the_same_encoding(tok, samples):
    some = samples[:10] + samples[-5:]
    _same([encode_sample(s, tok, 512) for s in some],
          encode_samples(some, tok, 512, workers=2, chunk=8))


def test_assistant_mask_and_auto_workers():
    starts = np.array([0, 3, 5, 9, 12])
    assert assistant_mask(starts, [(3, 6), (12, 20)]).tolist() == [False, True, True, False,
                                                                   True]
    assert not assistant_mask(starts, []).any()
    assert auto_workers("cpu") == 0 and 1 <= auto_workers("cuda:0") <= 8
