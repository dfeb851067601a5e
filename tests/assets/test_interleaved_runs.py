"""Interleaved documents inside the main graph (issue 16): ``run_graph`` (``mm-assets run``)
runs the document layers when documents were ingested, ``--missing`` resumes them, ``status``
shows their per-shard commit state, a changed ``doc_repeats`` makes ``docs_curated`` stale, and
``docs_curated`` reads only its own shard's removals.

Real stages on a small mmc4 fixture (12 documents with a logo in all 12, 2 doc shards); the
model assets (doc_quality, doc_embeddings) are left out to keep it fast.
"""

import pytest
from dagster import instance_for_test
from typer.testing import CliRunner

from mm_assets.core import layout, schemas
from mm_assets.core.commits import UncommittedError, read_commits, uncommit
from mm_assets.core.interleaved import fixtures as fx
from mm_assets.core.interleaved.budget import committed_docs
from mm_assets.core.interleaved.ingest import DocIngestConfig, plan_doc_ingest
from mm_assets.core.interleaved.shards import read_docs
from mm_assets.definitions import default_resources
from mm_assets.runner import _plan, run_graph
from mm_assets.status import asset_statuses
from resources.storage import StorageResource

CHAIN = ["interleaved_docs", "doc_hashes", "doc_repeats", "docs_curated"]
LOGO = fx.logo_png()


@pytest.fixture
def root(tmp_path):
    docs = fx.make_docs(12, seed=5, logo_in=12, url_only_every=3)
    path = fx.write_mmc4(tmp_path / "docs.jsonl", docs, tmp_path / "images")
    storage = StorageResource(root=str(tmp_path / "root"))
    [summary] = plan_doc_ingest(storage.store(), "mmc4", [str(path)], str(tmp_path / "images"),
                                DocIngestConfig(shard_size=6))
    with instance_for_test() as instance:
        instance.add_dynamic_partitions("doc_shards", summary.shards)
        yield {"store": storage.store(), "instance": instance, "shards": summary.shards,
               "resources": {**default_resources(), "storage": storage}}


def _labels(lines):
    out = []
    return lambda s: out.append(s) or lines.append(s)


def _logos(store, shard):
    with store.open_read(layout.docs_curated_shard(shard)) as f:
        return sum(im.data == LOGO for d in read_docs(f) for im in d.images)


def test_document_layers_run_resume_and_go_stale(root):
    store, inst, shards, res = root["store"], root["instance"], root["shards"], root["resources"]
    lines: list[str] = []
    s = run_graph(inst, res, select=CHAIN, progress=_labels(lines))
    assert s.failed == [] and s.runs == 5  # 2 shards x (docs+hashes), repeats, 2 x curated
    assert lines == [f"interleaved_docs+doc_hashes [{shards[0]}]",
                     f"interleaved_docs+doc_hashes [{shards[1]}]", "doc_repeats",
                     f"docs_curated [{shards[0]}]", f"docs_curated [{shards[1]}]"]
    assert sorted(read_commits(store, "docs_curated")) == shards
    assert [_logos(store, sh) for sh in shards] == [0, 0]  # the logo in 12 > 10 documents
    for sh in shards:  # doc_repeats split its removals per doc shard: each file, its own keys
        with store.open_read(layout.doc_shard(sh)) as f:
            keys = {d.key for d in read_docs(f)}
        part = store.read_table(layout.doc_repeats_shard(sh), schemas.DOC_DECISIONS)
        assert set(part["key"].to_list()) <= keys and part.height == 6
        assert part["reason"].unique().to_list() == ["repeated_image"]
    status = {r.asset: (r.total, r.done, r.failed) for r in asset_statuses(inst, store, CHAIN)}
    assert status == {"interleaved_docs": (2, 2, 0), "doc_hashes": (2, 2, 0),
                      "doc_repeats": (1, 1, 0), "docs_curated": (2, 2, 0)}

    # --missing: only what has no commit record
    uncommit(store, "docs_curated", shards[1])
    lines.clear()
    s = run_graph(inst, res, select=CHAIN, missing_only=True, progress=_labels(lines))
    assert s.failed == [] and lines == ["doc_repeats", "docs_curated [000001]"]

    # doc_repeats with another policy: the curated shards are stale until re-curated
    cfg = {"ops": {"doc_repeats": {"config": {"max_docs_per_image": 20}}}}
    assert run_graph(inst, res, select=["doc_repeats"], run_config=cfg).failed == []
    assert read_commits(store, "docs_curated") == {}
    status = {r.asset: (r.done, r.total) for r in asset_statuses(inst, store, CHAIN)}
    assert status["docs_curated"] == (0, 2)
    with pytest.raises(UncommittedError, match="stale after doc_repeats changed"):
        committed_docs(store, "docs_curated")  # a mixture refuses them
    for rel in (layout.DOC_REPEAT_IMAGES, layout.DOC_DUPLICATES):  # docs_curated reads only
        store.rm(rel)  # doc_repeats/shards/{its shard}.parquet, never the global tables
    lines.clear()
    s = run_graph(inst, res, select=["docs_curated"], missing_only=True,
                  progress=_labels(lines))
    assert lines == ["docs_curated [000000]", "docs_curated [000001]"] and s.failed == []
    assert [_logos(store, sh) for sh in shards] == [6, 6]  # kept under the new policy
    assert committed_docs(store, "docs_curated") == shards

    # the same policy again: identical outputs, nothing withdrawn
    assert run_graph(inst, res, select=["doc_repeats"], run_config=cfg).failed == []
    assert sorted(read_commits(store, "docs_curated")) == shards


def test_plan_includes_document_layers_only_with_doc_shards(root, tmp_path):
    store = root["store"]
    steps = _plan(["doc_hashes", "doc_repeats", "docs_curated"], [], None, store, False,
                  doc_shards=root["shards"])
    assert [c for c, _ in steps] == [["doc_hashes"], ["doc_repeats"], ["docs_curated"]]
    assert steps[0][1]() == root["shards"] and steps[1][1] == [None]
    def stop(label):  # interrupt before the first run: the summary lists the whole plan
        raise KeyboardInterrupt

    s = run_graph(root["instance"], root["resources"], progress=stop)  # default selection
    layer = "interleaved_docs+doc_hashes+doc_quality+doc_embeddings"
    assert [s.interrupted, *s.not_started] == [  # a root of documents only: their layers
        f"{layer} [{root['shards'][0]}]", f"{layer} [{root['shards'][1]}]",
        "doc_repeats+doc_clusters", "docs_curated [planned]"] and s.runs == 0
    empty = StorageResource(root=str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="no doc shards"):
        run_graph(root["instance"], {**root["resources"], "storage": empty},
                  select=["docs_curated"], doc_shards=[])


def test_cli_status_and_interleaved_run_missing(root, monkeypatch, tmp_path):
    from mm_assets.cli import app

    store = root["store"]
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MM_ASSETS_ROOT", store.root)
    cli = CliRunner()
    # the CLI's own instance: register the doc shards there, as `interleaved ingest` does
    from mm_assets.runner import get_instance

    get_instance().add_dynamic_partitions("doc_shards", root["shards"])
    r = cli.invoke(app, ["interleaved", "run", "--select", "interleaved_docs", "--shards", "0"])
    assert r.exit_code == 0, r.output
    r = cli.invoke(app, ["interleaved", "run", "--select", "interleaved_docs", "--missing"])
    assert r.exit_code == 0 and "interleaved_docs [000001]" in r.output, r.output
    assert "[000000]" not in r.output  # committed already
    st = cli.invoke(app, ["status"])
    rows = {ln.split()[0]: ln.split()[1:] for ln in st.output.splitlines()[2:]}
    assert rows["interleaved_docs"] == ["2", "0", "0"] and rows["docs_curated"] == ["0", "2", "0"]
    assert rows["doc_repeats"] == ["0", "1", "0"]
