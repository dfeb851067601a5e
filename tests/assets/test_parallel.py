"""Per-shard stages over several partitions in worker processes: byte-identical outputs."""

import logging
from types import SimpleNamespace

import pytest

from mm_assets.assets._common import per_shard, recorded_hashes_rel
from mm_assets.assets.dedup import hash_shard
from mm_assets.assets.raw import raw_shard
from mm_assets.core.ingest.plan import IngestConfig, plan_ingest
from mm_assets.core.ingest.rawshard import RawShardConfig
from mm_assets.core.parallel import map_shards, resolve_workers
from mm_assets.core.storage import Store

LMMS = ["single_image.json", "multi_images.json", "celeba_image_train.json"]


def context(keys):
    return SimpleNamespace(partition_keys=keys, log=logging.getLogger("test"))


def snapshot(store: Store, folder: str) -> dict[str, bytes]:
    return {n: store.fs.cat_file(store.path(f"{folder}/{n}")) for n in store.ls(folder)}


@pytest.fixture(scope="module")
def planned(shared, tmp_path_factory):
    store = Store(str(tmp_path_factory.mktemp("root")))
    ex = shared / "llava" / "lmms-finetune" / "example_data"
    shards = plan_ingest(store, [str(ex / f) for f in LMMS], str(ex / "images"),
                         IngestConfig(shard_size=12))
    assert len(shards) >= 3
    return store, shards


def test_raw_shards_and_image_hashes_identical_with_1_and_2_workers(planned):
    store, shards = planned
    out = {}
    for workers in (1, 2):
        for folder in ("raw_shards", "image_hashes"):
            store.fs.rm(store.path(folder), recursive=True) if store.exists(folder) else None
        raw = per_shard(context(shards), "raw_shards", raw_shard, store, RawShardConfig(),
                        workers=workers)
        hashed = per_shard(context(shards), "image_hashes", hash_shard, store, 64_000_000,
                           workers=workers)
        assert raw.metadata["run_workers"] == workers == hashed.metadata["run_workers"]
        out[workers] = (snapshot(store, "raw_shards"), snapshot(store, "image_hashes"),
                        raw.metadata["run_n_out"], hashed.metadata["run_n_in"])
    assert out[1][2] == out[1][3] > 20
    assert len(out[1][0]) == 2 * len(shards) and len(out[1][1]) == len(shards)
    assert out[1] == out[2]


def test_recorded_hashes_equal_hashes_computed_from_the_shard(planned):
    store, shards = planned
    for shard in shards:
        raw_shard(shard, store, RawShardConfig())
    reused = [hash_shard(s, store, 64_000_000)[1]["decoded_here"] for s in shards]
    with_record = snapshot(store, "image_hashes")
    for shard in shards:
        store.fs.rm(store.path(recorded_hashes_rel(shard)))
    decoded = [hash_shard(s, store, 64_000_000)[1]["decoded_here"] for s in shards]
    assert reused == [False] * len(shards) and decoded == [True] * len(shards)
    assert snapshot(store, "image_hashes") == with_record
    # a smaller pixel cap than raw_shards used: the record is not reused
    raw_shard(shards[0], store, RawShardConfig())
    assert hash_shard(shards[0], store, 64)[1]["decoded_here"] is True


def double(shard: str, factor: int) -> int:
    if shard == "bad":
        raise RuntimeError("shard bad failed")
    return int(shard) * factor


def test_map_shards_keeps_order_and_raises():
    keys = [str(i) for i in range(7)]
    assert list(map_shards(double, keys, (3,), workers=2)) == [3 * i for i in range(7)]
    assert list(map_shards(double, keys, (3,), workers=1)) == [3 * i for i in range(7)]
    with pytest.raises(RuntimeError, match="shard bad failed"):
        list(map_shards(double, ["1", "bad", "2"], (1,), workers=2))
    with pytest.raises(ValueError, match="workers"):
        resolve_workers(-1, 3)
    assert resolve_workers(8, 3) == 3 and resolve_workers(0, 100) >= 1
