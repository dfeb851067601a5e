"""ingest --force: an input ingested with the wrong image folder is re-planned over its shards,
and the commit records depending on them are withdrawn (nothing else)."""

import io
import json

import pytest
from PIL import Image

from mm_assets.core import layout
from mm_assets.core.commits import read_commits, write_commit
from mm_assets.core.ingest import plan as plan_mod
from mm_assets.core.ingest.plan import IngestConfig, ingest_inputs, read_manifest
from mm_assets.core.ingest.rawshard import RawShardConfig, build_samples
from mm_assets.core.ingest.reingest import Downstream
from mm_assets.core.records import StageCounts
from mm_assets.core.storage import Store

DOWN = Downstream(("curated", "raw_shards"), ("exact_duplicates", "mixtures"))


@pytest.fixture
def world(tmp_path):
    """5 image records in ``data/in.json`` with their images in ``data/imgs``, and another
    input ``other.jsonl``; both ingested, ``in.json`` WITHOUT ``--images`` (wrong root)."""
    data = tmp_path / "data"
    (data / "imgs").mkdir(parents=True)
    recs = []
    for i in range(5):
        buf = io.BytesIO()
        Image.new("RGB", (16, 12), (i * 40, 10, 10)).save(buf, "PNG")
        (data / "imgs" / f"{i}.png").write_bytes(buf.getvalue())
        recs.append({"id": i, "image": f"{i}.png", "conversations": [
            {"from": "human", "value": "<image>\nColour?"}, {"from": "gpt", "value": f"red {i}"}]})
    (data / "in.json").write_text(json.dumps(recs))
    (data / "other.jsonl").write_text(json.dumps({"conversations": [
        {"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]}) + "\n")
    store = Store(str(tmp_path / "root"))
    cfg = IngestConfig(shard_size=2)
    first = ingest_inputs(store, [str(data / "in.json"), str(data / "other.jsonl")], None, cfg)
    assert [s.shards for s in first] == [["000000", "000001", "000002"], ["000003"]]
    for shard in ["000000", "000001", "000002", "000003"]:  # as if the graph had run
        for asset in ("raw_shards", "curated", "text_quality"):
            write_commit(store, asset, shard, StageCounts(1, 1))
    for asset, part in (("exact_duplicates", layout.GLOBAL), ("mixtures", "mine")):
        write_commit(store, asset, part, StageCounts(1, 1))
    return store, data, cfg


def _quarantined(store, shards):
    out = []
    for sh in shards:
        header, recs = read_manifest(store, sh)
        q: list = []
        list(build_samples(header, recs, RawShardConfig(), q))
        out += q
    return out


def test_already_ingested_names_force_and_force_replans_in_place(world):
    store, data, cfg = world
    assert len(_quarantined(store, ["000000", "000001", "000002"])) == 5  # images not found
    again = ingest_inputs(store, [str(data / "in.json")], str(data / "imgs"), cfg)
    assert again[0].shape == "already_ingested" and "--force" in again[0].line()
    assert read_commits(store, "curated").keys() == {"000000", "000001", "000002", "000003"}

    forced = ingest_inputs(store, [str(data / "in.json")], str(data / "imgs"), cfg,
                           force=True, downstream=DOWN)[0]
    assert forced.shards == forced.replaced == ["000000", "000001", "000002"]
    assert forced.retired == [] and forced.records == 5
    assert _quarantined(store, forced.shards) == []  # images found now
    assert read_manifest(store, "000000")[0]["image_root"] == str(data / "imgs")
    # the replaced shards' records of the named assets are withdrawn, nothing else
    assert set(read_commits(store, "raw_shards")) == set(read_commits(store, "curated")) == \
        {"000003"}
    assert set(read_commits(store, "text_quality")) == {"000000", "000001", "000002", "000003"}
    assert read_commits(store, "exact_duplicates") == read_commits(store, "mixtures") == {}
    assert len(forced.withdrawn) == 8 and "curated[000001]" in forced.withdrawn
    assert "replaces shard(s) 000000, 000001, 000002" in forced.line()
    state = store.read_json(layout.INGEST_STATE)
    assert sorted(state["ingested"].values()) == [["000000", "000001", "000002"], ["000003"]]
    assert state["next_shard"] == 4 and store.ls(layout.REINGEST_STAGING) == []
    # keys are stable (same slug, same record index): downstream joins still line up
    assert read_manifest(store, "000000")[1][0].key.startswith("in-0000000")


def test_force_with_fewer_shards_retires_the_rest_and_more_shards_get_new_ids(world):
    store, data, _ = world
    big = ingest_inputs(store, [str(data / "in.json")], str(data / "imgs"),
                        IngestConfig(shard_size=4), force=True, downstream=DOWN)[0]
    assert big.shards == ["000000", "000001"] and big.retired == ["000002"]
    assert not store.exists(layout.manifest("000002"))
    assert "raw_shards[000002]" in big.withdrawn
    small = ingest_inputs(store, [str(data / "in.json")], str(data / "imgs"),
                          IngestConfig(shard_size=1), force=True, downstream=DOWN)[0]
    assert small.shards == ["000000", "000001", "000004", "000005", "000006"]
    assert sum(len(read_manifest(store, s)[1]) for s in small.shards) == 5


def test_force_on_a_file_corrected_in_place_replaces_its_earlier_version(world):
    store, data, cfg = world
    recs = json.loads((data / "in.json").read_text())[:3]
    (data / "in.json").write_text(json.dumps(recs))
    plain = ingest_inputs(store, [str(data / "in.json")], str(data / "imgs"), cfg)[0]
    assert plain.shards == ["000004", "000005"]  # without --force: a new input (as before)
    forced = ingest_inputs(store, [str(data / "in.json")], str(data / "imgs"), cfg, force=True,
                           downstream=DOWN)[0]
    # both earlier ingests of the URL are replaced by one
    assert forced.replaced == ["000000", "000001", "000002", "000004", "000005"]
    assert forced.shards == ["000000", "000001"]
    assert forced.retired == ["000002", "000004", "000005"]
    state = store.read_json(layout.INGEST_STATE)
    assert sorted(state["ingested"].values()) == [["000000", "000001"], ["000003"]]


def test_a_failing_replan_changes_nothing(world, monkeypatch):
    store, data, cfg = world
    before = {s: store.read_bytes(layout.manifest(s)) for s in ["000000", "000001", "000002"]}
    state = store.read_bytes(layout.INGEST_STATE)
    real = plan_mod._Planner.write

    def write_then_fail(self, lines, header):
        real(self, lines, header)
        if self.staging:
            raise OSError("disk full")

    monkeypatch.setattr(plan_mod._Planner, "write", write_then_fail)
    with pytest.raises(OSError, match="disk full"):
        ingest_inputs(store, [str(data / "in.json")], str(data / "imgs"), cfg, force=True,
                      downstream=DOWN)
    assert {s: store.read_bytes(layout.manifest(s)) for s in before} == before
    assert store.read_bytes(layout.INGEST_STATE) == state
    assert len(read_commits(store, "curated")) == 4 and store.ls(layout.REINGEST_STAGING) == []
