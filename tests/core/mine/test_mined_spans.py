"""``mined`` reads only the selected samples' byte spans recorded by pool_assign (range reads
through fsspec), gives the same bytes as a scan from the start, and falls back to a counted,
noted scan for assignment tables written before spans were recorded."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import fsspec
import polars as pl
import pytest

from mm_assets.core import layout, schemas
from mm_assets.core.mine import output
from mm_assets.core.mine.output import write_mined
from mm_assets.core.mine.pool_shard import read_assign_table
from mm_assets.core.mine.recipe import parse_mining_recipe
from mm_assets.core.mine.select import select
from mm_assets.core.shards import iter_tar_spans, read_tar_span

sys.path.insert(0, str(Path(__file__).parent))
from mining_world import build_world

STEMS = ("00000", "00001", "00002")  # 400 images + in-pool duplicates, 200 per shard


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("spans")
    return build_world(str(base / "root"), str(base / "pool"), n_corpus=120, n_pool=400,
                       kinds=4, pool_shard=200)


def _recipe(name: str):
    return parse_mining_recipe(f"name: {name}\npools: [testpool]\ncounts: {{0: 15, 1: 15}}\n"
                               "min_sim: 0.2\ndedup: {exact: true, phash_radius: 6}\nseed: 2\n"
                               "shard_size: 1000\n")


def _pool_tar(world, stem: str) -> Path:
    return Path(world.store.path("")).parent / "pool" / f"{stem}.tar"


def _mined_bytes(store, name: str) -> list[bytes]:
    return [store.read_bytes(rel) for rel in store.read_json(layout.mined_manifest(name))["shards"]]


def test_spans_cover_exactly_one_sample_each_pax_and_long_names_included():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for key in ("a", "b" * 120, "c\u00e9", "d"):  # long and non-ASCII names: PAX headers
            for ext, blob in (("jpg", key.encode() * 300), ("txt", b"caption " + key.encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(blob)
                tf.addfile(info, io.BytesIO(blob))
    data = buf.getvalue()
    spans = list(iter_tar_spans(io.BytesIO(data)))
    assert [k for k, _, _ in spans] == ["a", "b" * 120, "c\u00e9", "d"]
    for key, parts, (a, b) in spans:
        assert a % 512 == 0 and b % 512 == 0
        assert read_tar_span(data[a:b]) == [(key, parts)]  # the span alone is that sample
    assert spans[1][2][0] == spans[0][2][1]  # contiguous: PAX header inside the next span


def test_mined_reads_only_the_selected_spans_and_matches_a_full_scan(world, monkeypatch):
    store = world.store
    r = _recipe("spans")
    sel = select(store, r)
    _, man = write_mined(store, r, sel)
    reads = man["pool_reads"]
    taken = man["totals"]["taken"]
    assert taken == 30 and reads["span_samples"] == taken and reads["scanned_shards"] == 0
    assert "note" not in reads
    rows = pl.concat([read_assign_table(store, "testpool", s, schemas.POOL_ASSIGN)
                      for s in STEMS])
    picked = rows.filter(pl.col("key").is_in(sel.rows["key"].to_list()))
    span_bytes = int((picked["span_end"] - picked["span_start"]).sum())
    pool_bytes = sum(_pool_tar(world, s).stat().st_size for s in STEMS)
    assert span_bytes <= reads["bytes_read"] <= span_bytes + reads["requests"] * output.SPAN_GAP
    assert reads["bytes_read"] < pool_bytes / 3
    by_span = _mined_bytes(store, "spans")

    # the same selection read from a memory:// copy of the pool: range reads through fsspec
    mem = fsspec.filesystem("memory")
    for s in STEMS:
        mem.pipe(f"/pool/{s}.tar", _pool_tar(world, s).read_bytes())
    monkeypatch.setattr(output, "_shard_url", lambda _, pool, stem: f"memory:///pool/{stem}.tar")
    _, man_mem = write_mined(store, r, sel)
    assert man_mem["pool_reads"] == reads and _mined_bytes(store, "spans") == by_span
    monkeypatch.setattr(output, "SPAN_GAP", 0)  # no merging, one range per fetch batch
    monkeypatch.setattr(output, "SPAN_BATCH", 1024)  # smaller than any sample
    _, man_small = write_mined(store, r, sel)
    assert man_small["pool_reads"]["requests"] == taken
    assert man_small["pool_reads"]["bytes_read"] == span_bytes
    assert _mined_bytes(store, "spans") == by_span
    monkeypatch.undo()

    # tables from before spans were recorded: scanned from the start, counted and noted
    saved = {s: store.read_bytes(layout.pool_assign("testpool", s)) for s in STEMS}
    try:
        for s in STEMS:
            old = store.read_table(layout.pool_assign("testpool", s), schemas.POOL_ASSIGN)
            store.write_parquet(layout.pool_assign("testpool", s),
                                old.drop("span_start", "span_end"))
        _, man_old = write_mined(store, r, select(store, r))
        old_reads = man_old["pool_reads"]
        assert old_reads["scanned_shards"] == reads["span_shards"] >= 2
        assert old_reads["span_samples"] == 0
        assert "re-materialize pool_assign[testpool__00000, testpool__00001" in old_reads["note"]
        assert old_reads["bytes_read"] > 3 * reads["bytes_read"]
        assert _mined_bytes(store, "spans") == by_span  # same output bytes
    finally:
        for s, b in saved.items():
            store.write_bytes(layout.pool_assign("testpool", s), b)


def test_a_span_holding_another_sample_is_refused(world):
    """A pool shard rewritten with the same size but other samples at the recorded offsets."""
    from mm_assets.core.mine.select import MiningError

    store = world.store
    r = _recipe("moved")
    sel = select(store, r)
    stem = sel.rows["shard"][0]
    src = _pool_tar(world, stem)
    keep = src.read_bytes()
    try:
        with tarfile.open(src) as tf:
            members = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]
        with tarfile.open(src, "w") as tf:  # the same members, renamed: spans hold other keys
            for m, blob in members:
                m.name = "x" + m.name[1:]
                tf.addfile(m, io.BytesIO(blob))
        with pytest.raises(MiningError, match=rf"{stem}.tar: sample .* changed since "
                                              rf"pool_assign.*pool_assign\[testpool__{stem}\]"):
            write_mined(store, r, sel)
    finally:
        src.write_bytes(keep)
