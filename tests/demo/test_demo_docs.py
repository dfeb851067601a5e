"""The demo's interleaved input (``mm_assets/demo/docs.py``): deterministic, and what the demo
run shows about documents — a broken line quarantined, a logo in more than
``max_docs_per_image`` documents, a duplicate document, URL-only images counted."""

import polars as pl
from dagster import instance_for_test

from mm_assets.core.interleaved import fixtures as fx
from mm_assets.core.interleaved import repeated as rep
from mm_assets.core.interleaved.hashes import hash_docs
from mm_assets.core.interleaved.ingest import build_doc_shard, image_counts
from mm_assets.core.interleaved.shards import read_docs
from mm_assets.core.layout import doc_shard
from mm_assets.core.storage import Store
from mm_assets.demo.docs import N_DOCS, generate_docs, ingest_demo_docs


def test_demo_documents_ingest_and_show_each_policy(tmp_path):
    path, _ = generate_docs(tmp_path / "in")
    first = path.read_bytes()
    assert generate_docs(tmp_path / "again")[0].read_bytes() == first  # deterministic
    store = Store(str(tmp_path / "root"))
    with instance_for_test() as instance:
        [shard] = ingest_demo_docs(tmp_path / "in", store, instance)
        assert instance.get_dynamic_partitions("doc_shards") == [shard]
        assert ingest_demo_docs(tmp_path / "in", store, instance) == []  # already ingested
    counts, quarantine, images = build_doc_shard(store, shard)
    assert (counts.n_in, counts.n_out) == (N_DOCS + 2, N_DOCS + 1)
    assert [q.reason for q in quarantine] == ["bad_json"]
    ic = image_counts(images)
    assert ic.reconciles() and ic.n_in == 2 * (N_DOCS + 1) and images["images_url_only"] == 3
    with store.open_read(doc_shard(shard)) as f:
        docs = list(read_docs(f))
    assert sum(len(d.texts) for d in docs) == N_DOCS + 1  # one text segment each
    image_rows, doc_rows = hash_docs(docs, 10**8)
    rows, groups = rep.repeated_images(image_rows, rep.RepeatConfig())
    logo = groups.filter(pl.col("action") == "drop")
    assert logo["n_docs"].to_list() == [N_DOCS + 1] * 2  # by bytes and by pHash, > 10 docs
    assert rows.filter(pl.col("action") == "drop")["pos"].unique().to_list() == [0]
    assert all(d.images[0].data == fx.logo_png() for d in docs)
    dups = rep.duplicate_documents(doc_rows, rep.RepeatConfig())
    assert dups["action"].sort().to_list() == ["keep", "remove"]
