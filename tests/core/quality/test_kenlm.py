"""KenLM perplexity (CCNet style) with KenLM's own test model, ``text_ref/kenlm/lm/test.arpa``."""

import math

import kenlm
import numpy as np
import polars as pl
import pytest

from mm_assets.core.quality.kenlm_ppl import load_kenlm, normalize, score_samples_kenlm
from mm_assets.core.quality.ppl import PPL_SCHEMA, PplConfig, build_scorer
from mm_assets.core.records import Sample

# Every word and bigram of this sentence is in test.arpa ("<s> looking on a little more loin .").
IN_LM = "Looking on a little more loin."


@pytest.fixture(scope="module")
def arpa(shared):
    return shared / "text_ref" / "kenlm" / "lm" / "test.arpa"


def _sample(key, answer, source=""):
    return Sample(key, [{"from": "human", "value": "<image>\nWhat is it?"},
                        {"from": "gpt", "value": answer}], source=source)


def test_scores_match_kenlm_and_rank_real_text_first(arpa):
    lm = load_kenlm(str(arpa))
    assert lm.order == 5
    ref = kenlm.Model(str(arpa))
    rng = np.random.default_rng(0)
    words = IN_LM.lower().rstrip(".").split()
    shuffled = " ".join(rng.permutation(words)) + "."
    garbage = "Zebra quantum xylophone marmalade fjord."
    table = score_samples_kenlm([_sample("in", IN_LM), _sample("sh", shuffled),
                                 _sample("ga", garbage)], lm)
    assert table.schema == pl.Schema(PPL_SCHEMA)
    ppl = dict(zip(table["key"], table["ppl"], strict=True))
    # Same value as kenlm's own perplexity of the normalised, tokenised line.
    assert ppl["in"] == pytest.approx(ref.perplexity("looking on a little more loin ."), rel=1e-9)
    assert ppl["sh"] == pytest.approx(ref.perplexity(" ".join(shuffled.lower()[:-1].split())
                                                     + " ."), rel=1e-9)
    assert ppl["in"] < 10 < ppl["sh"] < ppl["ga"], ppl
    row = table.row(0, named=True)
    assert row["n_assistant_tokens"] == 8  # 7 tokens + </s>
    assert row["reason"] is None and row["truncated"] is False
    assert row["nll"] == pytest.approx(math.log(row["ppl"]))


def test_lines_are_pooled_like_ccnet(arpa):
    lm = load_kenlm(str(arpa))
    ref = kenlm.Model(str(arpa))
    a, b = "looking on a little more loin .", "i would also consider watching ."
    table = score_samples_kenlm([_sample("two", f"{a}\n{b}")], lm)
    expect = 10 ** (-(ref.score(a) + ref.score(b)) / (len(a.split()) + len(b.split()) + 2))
    assert table["ppl"][0] == pytest.approx(expect, rel=1e-9)
    # Whole text adds the human turn; the <image> token is not scored.
    q = "what is it ?"
    n_text = len(a.split()) + len(b.split()) + len(q.split()) + 3
    assert table["n_tokens"][0] == n_text
    expect_text = 10 ** (-(ref.score(q) + ref.score(a) + ref.score(b)) / n_text)
    assert table["text_ppl"][0] == pytest.approx(expect_text, rel=1e-9)


def test_normalisation_and_empty_text(arpa):
    assert normalize("  Élan  1984\tCAFÉ ") == "elan 0000 cafe"
    lm = load_kenlm(str(arpa))
    table = score_samples_kenlm([_sample("e", "  \n "), _sample("u", "LOOKING ON A LITTLE "
                                                                      "MORE LOIN.")], lm)
    assert table["ppl"][0] is None and table["reason"][0] == "no_assistant_text"
    assert table["ppl"][1] == pytest.approx(lm.model.perplexity("looking on a little more "
                                                                "loin ."))


def test_missing_and_corrupt_model_files_name_the_path(tmp_path, arpa):
    missing = tmp_path / "nope.arpa"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        load_kenlm(str(missing))
    garbage = tmp_path / "garbage.arpa"
    garbage.write_text("this is not a language model\n")
    with pytest.raises(ValueError, match=str(garbage)):
        load_kenlm(str(garbage))
    truncated = tmp_path / "truncated.arpa"
    truncated.write_bytes(arpa.read_bytes()[:900])
    with pytest.raises(ValueError, match=str(truncated)):
        load_kenlm(str(truncated))
    with pytest.raises(ValueError, match=str(garbage)):
        build_scorer(f"kenlm:{garbage}", "cpu", "auto", PplConfig())


def test_resource_selects_kenlm(arpa):
    from resources.models import LanguageModelResource

    res = LanguageModelResource(model=f"kenlm:{arpa}", device="cpu")
    scorer = res.ppl_scorer(PplConfig())
    assert scorer.device == "cpu" and "no limit" in scorer.long_text_rule
    table = scorer.score([_sample("a", IN_LM, source="s1")])
    assert table["source"][0] == "s1" and table["ppl"][0] < 10
    with pytest.raises(ValueError, match="cannot rephrase"):
        res.load()


def test_ppl_assets_with_kenlm_and_per_source_deciles(arpa, tmp_path):
    """ppl_scores with a KenLM resource, then ppl_deciles per source, through Dagster."""
    from dagster import instance_for_test, materialize

    from mm_assets.assets.perplexity import ppl_deciles, ppl_scores
    from mm_assets.core.commits import write_commit
    from mm_assets.core.records import StageCounts
    from mm_assets.core.shards import write_samples
    from resources.models import LanguageModelResource
    from resources.storage import StorageResource

    vocab = ["looking", "on", "a", "little", "more", "loin", "screening", "the", "watching",
             "what", "i", "would", "also"]
    rng = np.random.default_rng(0)
    samples = [_sample(f"{src}{i:02d}", " ".join(rng.choice(vocab, 6)) + extra, source=src)
               for src, extra in [("lm", "."), ("oov", " zebra quantum.")] for i in range(20)]
    storage = StorageResource(root=str(tmp_path))
    with storage.store().open_write("raw_shards/000000.tar") as f:
        write_samples(f, samples)
    # committed as raw_shards would (ppl_scores checks it read every committed sample)
    write_commit(storage.store(), "raw_shards", "000000", StageCounts(len(samples), len(samples)))
    resources = {"storage": storage, "lm": LanguageModelResource(model=f"kenlm:{arpa}")}
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("shards", ["000000"])
        res = materialize([ppl_scores], partition_key="000000", instance=instance,
                          resources=resources)
        meta = res.asset_materializations_for_node("ppl_scores")[0].metadata
        assert meta["model"].value == f"kenlm:{arpa}" and meta["n_out"].value == 40
        assert "no limit" in meta["long_text_rule"].value
        res = materialize([ppl_deciles], instance=instance, resources=resources,
                          run_config={"ops": {"ppl_deciles": {"config": {"per_source": True}}}})
        assert res.success
    store = storage.store()
    table = store.read_parquet("ppl_deciles/deciles.parquet").sort("key")
    edges = store.read_json("ppl_deciles/edges.json")
    lm_rows, oov_rows = table.filter(pl.col("source") == "lm"), table.filter(
        pl.col("source") == "oov")
    # Over the corpus the OOV source holds the high deciles; per source, each spans 0..9.
    assert lm_rows["global_decile"].max() <= 4 and oov_rows["global_decile"].min() >= 5
    assert sorted(set(lm_rows["decile"])) == list(range(10)) == sorted(set(oov_rows["decile"]))
    np.testing.assert_allclose(edges["per_source"]["lm"],
                               np.quantile(lm_rows["ppl"].to_numpy(), np.arange(1, 10) / 10))
    assert edges["per_source"]["oov"][0] > edges["per_source"]["lm"][-1]
