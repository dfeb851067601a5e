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


def _commit_globals(store: Store, shards: list[str]) -> None:
    """Exact groups from the shards' real hashes, no SemDeDup duplicate, deciles by key."""
    import polars as pl

    from mm_assets.core import layout, schemas
    from mm_assets.core.commits import GLOBAL, write_commit
    from mm_assets.core.dedup.exact import exact_groups
    from mm_assets.core.records import StageCounts

    hashes = pl.concat([store.read_table(layout.image_hashes(s), schemas.IMAGE_HASHES)
                        for s in shards])
    keys = hashes["key"].to_list()
    deciles = pl.DataFrame({"key": keys, "ppl": [float(i) for i in range(len(keys))],
                            "source": ["t"] * len(keys), "decile": [i % 10 for i in
                                                                   range(len(keys))],
                            "global_decile": [i % 10 for i in range(len(keys))]},
                           schema=schemas.PPL_DECILES)
    tables = {"exact_duplicates": (layout.EXACT_GROUPS, exact_groups(hashes, "keep_one")),
              "semdedup": (layout.SEMDEDUP_SCORES, pl.DataFrame(schema=schemas.SEMDEDUP_SCORES)),
              "ppl_deciles": (layout.PPL_DECILES_TABLE, deciles)}
    for asset, (rel, df) in tables.items():
        store.write_parquet(rel, df)
        write_commit(store, asset, GLOBAL, StageCounts(df.height, df.height), [rel],
                     digests=True)


def test_curated_and_text_quality_identical_with_1_and_2_workers(planned):
    from mm_assets.assets.curated import build_shard_index, curate_shard, index_fingerprint
    from mm_assets.assets.text_quality import flag_shard
    from mm_assets.core.curate.decide import CurateConfig
    from mm_assets.core.quality.text_flags import TextQualityConfig

    store, shards = planned
    per_shard(context(shards), "raw_shards", raw_shard, store, RawShardConfig())
    per_shard(context(shards), "image_hashes", hash_shard, store, 64_000_000)
    _commit_globals(store, shards)
    fp = index_fingerprint(store)
    build_shard_index(store, fp, shards)
    cfg = CurateConfig(min_decile=1, max_decile=8)  # removes some samples by decile
    out = {}
    for workers in (1, 2):
        for name in store.ls("curated") if store.exists("curated") else []:
            if not name.startswith("_"):  # keep the index (curated/_index)
                store.rm(f"curated/{name}")
        store.fs.rm(store.path("text_quality"), recursive=True) if store.exists(
            "text_quality") else None
        cur = per_shard(context(shards), "curated", curate_shard, store, cfg, fp,
                        workers=workers, upstream="raw_shards")
        flags = per_shard(context(shards), "text_quality", flag_shard, store,
                          TextQualityConfig(), workers=workers, upstream="raw_shards")
        assert cur.metadata["run_workers"] == workers == flags.metadata["run_workers"]
        assert all(c.passed for c in cur.check_results + flags.check_results)
        out[workers] = ({n: store.fs.cat_file(store.path(f"curated/{n}"))
                         for n in store.ls("curated") if not n.startswith("_")},
                        snapshot(store, "text_quality"),
                        cur.metadata["run_n_out"], cur.metadata["run_n_removed"])
    assert out[1][3] > 0 and out[1][2] > 0  # decile filter removed some, kept others
    assert len(out[1][0]) == 2 * len(shards)  # a tar and a decisions table per shard
    assert out[1] == out[2]
