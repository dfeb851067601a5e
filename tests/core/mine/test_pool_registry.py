"""Pool registration: names, prefixes, shard listing, partition keys; and the generator."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import polars as pl
import pytest
from PIL import Image

from mm_assets.core import layout
from mm_assets.core.mine.pool import (
    PoolError,
    add_pool,
    all_partition_keys,
    load_pool,
    partition_key,
    pool_names,
    shard_url,
    split_partition_key,
)
from mm_assets.core.mine.poolgen import KINDS, PoolGenConfig, generate_pool
from mm_assets.core.storage import Store


def _touch_tar(path):
    with tarfile.open(path, "w"):
        pass


def test_add_list_and_extend(tmp_path):
    store = Store(str(tmp_path / "root"))
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    for p in (a / "000.tar", a / "001.tar", b / "010.tar"):
        _touch_tar(p)
    (a / "notes.txt").write_text("not a shard")
    spec, shards = add_pool(store, "dc_small", [str(a)])
    assert list(shards) == ["000", "001"] and spec.prefixes == (str(a),)
    assert store.exists(layout.pool_spec("dc_small"))
    _, shards = add_pool(store, "dc_small", [str(b)])  # extends, keeps the first prefix
    assert list(shards) == ["000", "001", "010"]
    assert load_pool(store, "dc_small").prefixes == (str(a), str(b))
    _, again = add_pool(store, "dc_small", [str(b)])  # idempotent
    assert again == shards
    assert pool_names(store) == ["dc_small"]
    assert all_partition_keys(store) == ["dc_small__000", "dc_small__001", "dc_small__010"]
    assert shard_url(store, "dc_small", "010") == f"{b}/010.tar"
    with pytest.raises(PoolError, match="no shard '999'"):
        shard_url(store, "dc_small", "999")


def test_refusals(tmp_path):
    store = Store(str(tmp_path / "root"))
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "empty").mkdir()
    _touch_tar(tmp_path / "a" / "x.tar")
    _touch_tar(tmp_path / "b" / "x.tar")
    for bad in ("a__b", "-x", "a/b", ""):
        with pytest.raises(PoolError, match="bad pool name"):
            add_pool(store, bad, [str(tmp_path / "a")])
    with pytest.raises(PoolError, match="does not exist"):
        add_pool(store, "p", [str(tmp_path / "missing")])
    with pytest.raises(PoolError, match="no .tar shard"):
        add_pool(store, "p", [str(tmp_path / "empty")])
    with pytest.raises(PoolError, match="in two prefixes"):
        add_pool(store, "p", [str(tmp_path / "a"), str(tmp_path / "b")])
    assert pool_names(store) == []  # nothing written by a refused add
    with pytest.raises(PoolError, match="no pool 'p'"):
        load_pool(store, "p")


def test_partition_keys_round_trip():
    assert partition_key("dc", "00000042") == "dc__00000042"
    assert split_partition_key("dc__00000042") == ("dc", "00000042")
    assert split_partition_key("dc__a__b") == ("dc", "a__b")
    with pytest.raises(PoolError):
        split_partition_key("no-separator")


def test_generated_pool_matches_its_truth(tmp_path):
    corpus = []
    rng = np.random.default_rng(5)
    for i in range(6):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).save(buf, "PNG")
        corpus.append((f"c{i}", buf.getvalue()))
    cfg = PoolGenConfig(n=30, shard_size=16, n_exact=2, n_resized=2, n_flipped=1, n_broken=1,
                        n_no_caption=1, size=64, seed=3)
    truth = generate_pool(str(tmp_path / "pool"), cfg, corpus)
    assert truth.height == 37 and sorted(truth["shard"].unique()) == ["00000000", "00000001",
                                                                      "00000002"]
    kinds = dict(truth.group_by("kind").len().iter_rows())
    assert kinds["copy_exact"] == 2 and kinds["copy_resized"] == 2 and kinds["copy_flipped"] == 1
    assert sum(kinds.get(k, 0) for k in KINDS) == 30
    members = {}
    for stem in truth["shard"].unique():
        with tarfile.open(tmp_path / "pool" / f"{stem}.tar") as tf:
            for m in tf:
                members[m.name] = tf.extractfile(m).read()
    src = dict(corpus)
    for row in truth.iter_rows(named=True):
        key = row["wds_key"]
        img = next(v for n, v in members.items() if n.startswith(key + ".")
                   and n.rsplit(".", 1)[1] in ("jpg", "png", "webp"))
        assert (f"{key}.txt" in members) == (row["kind"] != "no_caption")
        if row["how"] == "exact":
            assert img == src[row["copy_of"]]
        elif row["how"] == "flipped":
            a = np.asarray(Image.open(io.BytesIO(img)).convert("L"), np.float32)
            b = np.asarray(Image.open(io.BytesIO(src[row["copy_of"]])).convert("L"), np.float32)
            assert np.abs(a - b[:, ::-1]).mean() < np.abs(a - b).mean()
        elif row["how"] == "resized":
            w, h = Image.open(io.BytesIO(img)).size
            assert w < 50 and h < 40
    again = generate_pool(str(tmp_path / "pool2"), cfg, corpus)
    assert again.equals(truth)
    assert (tmp_path / "pool" / "00000001.tar").read_bytes() == \
        (tmp_path / "pool2" / "00000001.tar").read_bytes()
    assert pl.read_parquet(tmp_path / "pool" / "truth.parquet").equals(truth)
