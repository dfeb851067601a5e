"""The ``mixtures`` asset with an interleaved source: a token-budgeted recipe of curated
conversations and interleaved documents materializes, its blocking counts check passes and
its manifest states tokens per scheme and images per document."""

from dagster import instance_for_test, materialize
from test_budget import conversations, make_docs, write_doc_shards

from mm_assets.assets.mixtures import mixtures
from mm_assets.core import layout
from mm_assets.core.mix.recipe import split_counts
from mm_assets.core.shards import write_samples
from resources.storage import StorageResource


def test_mixtures_asset_with_interleaved_documents(tmp_path):
    storage = StorageResource(root=str(tmp_path / "root"))
    store = storage.store()
    write_doc_shards(tmp_path / "root" / layout.DOCS, make_docs(30, seed=2))
    with store.open_write(layout.curated_shard("000000")) as f:
        write_samples(f, conversations(90))
    assert not store.exists(layout.CLUSTER_ASSIGNMENTS)  # no clusters: not needed without
    # cluster_weights (the tryout's documents-only root failed on the missing table)
    store.write_bytes(layout.recipe("docmix.yaml"), (
        b"name: docmix\nsources: [curated, {name: web, interleaved: docs}]\n"
        b"ratio: {multimodal: 2, interleaved: 1}\ntotal_tokens: 20000\n"
        b"token_scheme: naflex_256\nmax_doc_tokens: 2500\nseed: 3\nshard_size: 16\n"))
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("recipes", ["docmix"])
        res = materialize([mixtures], partition_key="docmix", instance=instance,
                          resources={"storage": storage})
        assert res.success  # includes the blocking counts_reconcile check
        meta = res.asset_materializations_for_node("mixtures")[0].metadata
    m = store.read_json(layout.mixture_manifest("docmix"))
    assert m["tokens"]["scheme"] == "naflex_256"
    assert 20_000 <= m["tokens"]["realised"] < 20_000 + 2500
    tok = m["summary"]["tokens"]
    assert tok["text"] + tok["image"] == m["tokens"]["realised"]
    assert tok["image"] == tok["image_naflex_256"] and tok["image_fixed"] > tok["image"]
    docs = [s for s in m["samples"] if s["modality"] == "interleaved"]
    want = split_counts(len(m["samples"]), {"multimodal": 2, "interleaved": 1})
    assert {k: v for k, v in m["per_stratum"].items() if v} == want  # ratio in samples
    assert want["interleaved"] == len(docs)
    per = m["summary"]["images_per_unit"]["interleaved"]
    assert per["units"] == len(docs) and per["images"] == sum(s["n_images"] for s in docs)
    assert all(s["image_tokens"] + s["text_tokens"] <= 2500 for s in docs)
    assert m["source"]["per_source"]["web"]["url_only_images_dropped"] > 0
    assert meta["tokens_image_naflex_256"].value == tok["image"]
    assert "naflex_256" in m["token_schemes"]
    lineage = store.read_json(layout.mixture_lineage("docmix"))["upstream"]
    assert lineage["interleaved:web"]["documents"] == "docs"
    # the corpus funnel's mixture rows read the interleaved source and reconcile
    from mm_assets.core.report.funnel import FunnelBuilder
    from mm_assets.core.report.mixtures import mixture_rows

    b = FunnelBuilder(store)
    mixture_rows(b)
    assert b.f.checks and all(c.ok for c in b.f.checks), b.f.checks
    rows = {r.figure: r.n for r in b.f.rows if r.stage == "mixture docmix"}
    assert rows["drawn (distinct samples)"] == len(m["samples"])
    assert rows["removed: empty_document"] == 1  # the document holding only a URL-only image
    # the documented loader reads both kinds back (the tryout's KeyError: None on documents)
    from mm_assets.loader import iter_mixture

    got = list(iter_mixture(store, "docmix"))
    assert [k for k, _, _ in got] == [s["key"] for s in m["samples"]]
    by_key = {s["key"]: s for s in m["samples"]}
    n_docs = 0
    for key, images, turns in got:
        assert len(images) == by_key[key]["n_images"]
        if by_key[key]["modality"] == "interleaved":
            n_docs += 1
            idx = [t["image"] for t in turns if "image" in t]
            assert idx == list(range(len(images)))  # every image once, in document order
            assert any(t.get("text") for t in turns)
        else:
            assert turns[0]["from"] == "human"
    assert n_docs == len(docs)
