"""Streaming rephrasing gives what the list version gives: same samples, counts, cache files and
the same batches sent to the model (a backend whose output depends on the batch would show any
difference), while samples waiting for a batch beyond ``hold`` are spooled."""

import random

import pytest
import xxhash

from mm_assets.core import layout
from mm_assets.core.records import Sample
from mm_assets.core.storage import Store
from mm_assets.core.text.fidelity import Completion
from mm_assets.core.text.rephrase import RephraseConfig, cache_key, rephrase_samples
from mm_assets.core.text.rephrase_stream import rephrase_stream

ANSWERS = [f"The answer is option {c}, because the chart rises from {i} to {i + 3}."
           for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ")]


def _samples(n=240, seed=1) -> list[Sample]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        conv = []
        for _ in range(rng.randint(0, 3)):
            conv += [{"from": "human", "value": f"Question {i}?"},
                     {"from": "gpt", "value": rng.choice(ANSWERS)}]  # repeats across samples
        imgs = [bytes([i % 256]) * 10] if i % 3 else []
        out.append(Sample(f"k{i:04d}", conv, imgs, ["jpg"] * len(imgs), "src", {"i": i}))
    return out


def _backend():
    """Outputs depend on the text and on the batch (call number, position): None (failed),
    truncated, a number added (fails fidelity), or a kept rewrite."""
    calls: list[int] = []

    def generate(prompts: list[str]):
        calls.append(len(prompts))
        out = []
        for pos, p in enumerate(prompts):
            text = p.split("Answer:\n", 1)[1]
            h = xxhash.xxh3_64_intdigest(text.encode()) % 5
            out.append(None if h == 0 else Completion(text, truncated=True) if h == 1
                       else text + " 42" if h == 2
                       else text + " Indeed." * (1 + (len(calls) + pos) % 2))
        return out
    return generate, calls


def _cache(tmp_path, name) -> Store:
    store = Store(str(tmp_path / name))
    for a in ANSWERS[::4]:  # some rewrites cached before the run
        store.write_json(layout.rephrase_cache(cache_key("m", "clear", a)),
                         {"output": a + " Surely.", "truncated": False})
    return store


def _files(store: Store) -> dict[str, bytes]:
    folder = layout.rephrase_cache("x").rsplit("/", 1)[0]
    return {n: store.read_bytes(f"{folder}/{n}") for n in store.ls(folder)}


@pytest.mark.parametrize("batch_size,max_samples,hold", [(8, None, 4), (3, 150, 64),
                                                        (1, 0, 2)])
def test_stream_equals_the_list_version(tmp_path, batch_size, max_samples, hold):
    samples = _samples()
    cfg = RephraseConfig(batch_size=batch_size, max_samples=max_samples)
    ref_cache, got_cache = _cache(tmp_path, "a"), _cache(tmp_path, "b")
    gen_a, calls_a = _backend()
    want_counts: dict[str, int] = {}
    want = rephrase_samples(samples, gen_a, "m", cfg, ref_cache, want_counts)
    gen_b, calls_b = _backend()
    counts: dict[str, int] = {}
    seen: dict[str, int] = {}
    got = list(rephrase_stream(iter(samples), gen_b, "m", cfg, got_cache, counts, seen,
                               hold=hold, spool_dir=str(tmp_path)))
    assert got == want
    assert counts == want_counts and calls_b == calls_a
    assert _files(got_cache) == _files(ref_cache)
    assert seen["samples"] == len(samples)
    if max_samples != 0:
        assert want_counts["rephrased"] > 0 and want_counts["cache_hits"] > 0
        assert want_counts["backend_error"] > 0 and len(calls_a) > 1
        if hold < 8:
            assert seen["spooled"] > 0


def test_nothing_waits_without_cache_misses(tmp_path):
    """A second run over the cache the first one filled generates nothing and yields each
    sample as soon as it is read (nothing held, nothing spooled)."""
    samples = _samples(60)
    cfg = RephraseConfig(batch_size=4)
    cache = _cache(tmp_path, "c")
    calls = []

    def generate(prompts):
        calls.append(len(prompts))
        return [p.split("Answer:\n", 1)[1] + " Indeed." for p in prompts]

    first: dict[str, int] = {}
    list(rephrase_stream(samples, generate, "m", cfg, cache, first))
    assert sum(calls) > 0 and first["rephrased"] > 0
    calls.clear()
    seen: dict[str, int] = {}
    counts: dict[str, int] = {}
    for i, s in enumerate(rephrase_stream(iter(samples), generate, "m", cfg, cache, counts,
                                          seen, hold=1)):
        assert seen["samples"] == i + 1 and s.key == samples[i].key
    assert calls == [] and seen["spooled"] == 0
    assert counts["cache_hits"] == sum(1 for s in samples for t in s.conversations
                                       if t["from"] == "gpt")
