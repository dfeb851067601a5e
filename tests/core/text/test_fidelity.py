"""Rephrase fidelity on a labelled set: precision >= 0.95, recall >= 0.9 (issue 19 item 3)."""

from collections import Counter

from fidelity_cases import labelled

from mm_assets.core.records import Sample
from mm_assets.core.storage import Store
from mm_assets.core.text.fidelity import Completion, fidelity_problem, repetition
from mm_assets.core.text.rephrase import TEMPLATES, RephraseConfig, rephrase_samples


def _scores():
    rows = labelled()
    tp = fp = fn = 0
    missed, false_alarms = [], []
    for orig, rw, flag, bad, kind in rows:
        rejected = fidelity_problem(orig, rw, flag) is not None
        tp += rejected and bad
        fp += rejected and not bad
        fn += bad and not rejected
        if bad and not rejected:
            missed.append((kind, rw[:60]))
        if rejected and not bad:
            false_alarms.append((fidelity_problem(orig, rw, flag), rw[:60]))
    return rows, tp / max(1, tp + fp), tp / max(1, tp + fn), missed, false_alarms


def test_precision_and_recall_on_the_labelled_set():
    rows, precision, recall, missed, false_alarms = _scores()
    n_bad = sum(r[3] for r in rows)
    print(f"\nfidelity labelled set: {len(rows)} rewrites ({n_bad} bad, {len(rows) - n_bad} "
          f"good): precision {precision:.3f}, recall {recall:.3f}")
    assert len(rows) > 150 and n_bad > 100
    assert precision >= 0.95, false_alarms
    assert recall >= 0.9, missed


def test_the_reported_failures_each_get_their_reason():
    caption = ("A wide view of a harbour at dawn: fishing boats are moored along the quay, "
               "nets are piled beside crates of ice, and gulls circle above the water. ") * 8
    assert len(caption) > 1000
    cut = caption[:321]
    assert fidelity_problem(caption, cut) == "fidelity_truncated"
    assert fidelity_problem(caption, Completion(cut, truncated=True)) == "fidelity_truncated"
    assert fidelity_problem("A cat.", "Rewrite the answer:\n\n" * 6) == "fidelity_echo"
    prompt = TEMPLATES["qa"].format(text="A cat.")
    assert fidelity_problem("A cat.", prompt) == "fidelity_echo"
    looped = " ".join(["The dog sleeps on the porch in the sun."] * 5)
    assert fidelity_problem("The dog sleeps on the porch.", looped) == "fidelity_repetition"
    assert repetition(looped) > 0.5
    assert fidelity_problem("About 127.", "The answer is: 127.") == "fidelity_hedge"
    assert fidelity_problem("It is not red.", "It is red.") == "fidelity_negation"


def test_each_rejection_is_counted_with_its_reason_and_keeps_the_original(tmp_path):
    answers = ["About 127.", "It is not red.", "Paris is the capital of France."]
    samples = [Sample(f"k{i}", [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": a}])
               for i, a in enumerate(answers)]
    outs = {"About 127.": "The answer is: 127.", "It is not red.": Completion(
        "It is", truncated=True), "Paris is the capital of France.": "France's capital is Paris."}

    def generate(prompts):
        return [next(v for k, v in outs.items() if prompt.endswith(k)) for prompt in prompts]

    counts: dict[str, int] = {}
    store = Store(str(tmp_path))
    out = rephrase_samples(samples, generate, "m", RephraseConfig(), store, counts)
    assert [s.conversations[1]["value"] for s in out] == [
        "About 127.", "It is not red.", "France's capital is Paris."]
    assert counts == {"fidelity_hedge": 1, "fidelity_truncated": 1, "rephrased": 1}
    again: dict[str, int] = {}  # from the cache: the truncated flag is kept there
    rephrase_samples(samples, generate, "m", RephraseConfig(), store, again)
    assert again == {"cache_hits": 3, "fidelity_hedge": 1, "fidelity_truncated": 1,
                     "rephrased": 1}
    assert Counter(k for k in counts if k.startswith("fidelity_")) == Counter(
        {"fidelity_hedge": 1, "fidelity_truncated": 1})
