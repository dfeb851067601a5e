import json

import pytest

from mm_assets.core.ingest.plan import IngestConfig, plan_ingest, read_manifest, resolve_image
from mm_assets.core.storage import Store


@pytest.mark.parametrize("ref", ["../x.jpg", "/etc/passwd", "a/../../x.jpg", "s3://b/x.jpg",
                                 "C:\\x.jpg", ""])
def test_paths_escaping_the_root_are_refused(ref):
    assert resolve_image(ref, "/data/img") == (None, "unsafe_path")


def test_safe_paths_resolve_under_the_root():
    assert resolve_image("sub/../a.jpg", "/data/img") == ("/data/img/a.jpg", None)


def test_plan_ingest_shards_streams_and_is_idempotent(tmp_path):
    src = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": i % 3, "conversations": [{"from": "human", "value": f"q{i}"},
                                                         {"from": "gpt", "value": "a"}]})
             for i in range(25)]
    src.write_text("\n".join(lines[:10] + ["{nope"] + lines[10:]) + "\n")
    store = Store(str(tmp_path / "root"))
    shards = plan_ingest(store, [str(src)], None, IngestConfig(shard_size=10))
    assert shards == ["000000", "000001", "000002"]
    records = [r for s in shards for r in read_manifest(store, s)[1]]
    assert len(records) == 26
    assert sum(r.reason == "bad_json" for r in records) == 1
    assert len({r.key for r in records}) == 26  # ids repeat (i % 3) but keys do not
    assert plan_ingest(store, [str(src)], None, IngestConfig(shard_size=10)) == []


def test_shard_size_must_be_positive():
    with pytest.raises(ValueError, match="shard_size"):
        IngestConfig(shard_size=0)
