"""A synthetic storage root with raw shards and every decision table, made cheaply, with
decisions that follow simple rules of the sample index ``i`` (so tests can predict them).

Rules (key ``k{i:07d}``, shard ``i // per_shard`` as ``{:06d}``):
- text-only when ``i % 4 == 0``, else one small PNG; source ``src{i % 3}``;
- space image/text; cluster ``i % 8``; distance ``(i % 97) / 97``;
- exact groups: ``{i, i + 2}`` for ``i % 100 == 1`` (image pairs; representative ``i``,
  action ``merge``); the member ``i + 2`` is not unique for SemDeDup;
- SemDeDup: duplicate when ``i % 10 == 5`` (score 0.97 against ``i - 1``), else score 0.5;
- near groups: ``{i, i + 1}`` for ``i % 100 == 6``;
- perplexity ``1 + r / 10`` with ``r = i * 7919 % 1000``, decile ``r // 100``;
- curated: removed ``semdedup`` when duplicate, ``ppl_out_of_range`` at decile 9, else kept;
- one quarantined record ``bad{shard}`` (``missing_image``) per shard.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from mm_assets.core.records import Sample
from mm_assets.core.shards import write_samples
from mm_assets.core.storage import Store


def _pngs(n: int = 64) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        colour = rng.integers(0, 255, 3, dtype=np.uint8)
        arr = np.tile(colour, (48, 64, 1)) + rng.integers(0, 40, (48, 64, 3), dtype=np.uint8)
        Image.fromarray(arr.astype(np.uint8)).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def rules(n: int) -> pl.DataFrame:
    """Per-sample facts of a root of ``n`` samples (the columns the tables are made from)."""
    i = np.arange(n)
    r = i * 7919 % 1000
    dup = (i % 10 == 5)
    decile = r // 100
    return pl.DataFrame({
        "i": i, "key": [f"k{j:07d}" for j in i], "text_only": i % 4 == 0,
        "source": [f"src{j % 3}" for j in i], "cluster": (i % 8).astype(np.int32),
        "distance": ((i % 97) / 97).astype(np.float32), "duplicate": dup,
        "score": np.where(dup, 0.97, 0.5).astype(np.float32),
        "ppl": 1 + r / 10, "decile": decile.astype(np.int16)}).with_columns(
        pl.when("duplicate").then(pl.lit("semdedup")).when(pl.col("decile") == 9)
        .then(pl.lit("ppl_out_of_range")).otherwise(None).alias("reason"))


def build_root(root: Path, n: int, per_shard: int) -> pl.DataFrame:
    """Write the root; returns :func:`rules` with a ``shard`` column."""
    store, pngs = Store(str(root)), _pngs()
    facts = rules(n).with_columns(
        (pl.col("i") // per_shard).map_elements(lambda s: f"{s:06d}", pl.Utf8).alias("shard"))
    for (shard,), part in facts.group_by("shard", maintain_order=True):
        samples = []
        for row in part.iter_rows(named=True):
            i = row["i"]
            conv = [{"from": "human", "value": f"Question {i}: what is {i} times 7?"},
                    {"from": "gpt", "value": f"{i} times 7 is {i * 7}."}]
            imgs = [] if row["text_only"] else [pngs[i % len(pngs)]]
            if imgs:
                conv[0]["value"] = "<image>\n" + conv[0]["value"]
            samples.append(Sample(row["key"], conv, imgs, ["png"] * len(imgs), row["source"],
                                  {"location": f"synthetic.jsonl:{i + 1}"}))
        with store.open_write(f"raw_shards/{shard}.tar") as f:
            write_samples(f, samples)
        store.write_parquet(f"image_hashes/{shard}.parquet", part.select("key", "source"))
        store.write_parquet(f"curated/{shard}.decisions.parquet", part.select(
            "key", pl.when(pl.col("reason").is_null()).then(pl.lit("kept"))
            .otherwise(pl.lit("removed")).alias("status"), "reason"))
        store.write_parquet(f"quarantine/raw_shards/{shard}.parquet", pl.DataFrame({
            "key": [f"bad{shard}"], "stage": ["raw_shards"], "reason": ["missing_image"],
            "error": [f"synthetic/{shard}.png: FileNotFoundError"],
            "location": [f"synthetic.jsonl:{shard}"]}))
    _global_tables(store, facts)
    return facts


def _global_tables(store: Store, f: pl.DataFrame) -> None:
    space = pl.when(pl.col("text_only")).then(pl.lit("text")).otherwise(pl.lit("image"))
    store.write_parquet("clusters/assignments.parquet", f.select(
        "key", space.alias("space"), "cluster", "distance"))
    pair = f.filter(pl.col("i") % 100 == 1).select("i")
    grp = pl.concat([pair, pair.with_columns(pl.col("i") + 2)]).filter(pl.col("i") < f.height)
    groups = grp.join(f, on="i").with_columns(
        ((pl.col("i") // 100) * 100 + 1).alias("g")).with_columns(
        pl.format("g{}", "g").alias("group_id"),
        pl.format("k{}", pl.col("g").cast(pl.Utf8).str.zfill(7)).alias("representative"),
        pl.len().over("g").cast(pl.UInt32).alias("group_size")).filter(
        pl.col("group_size") > 1)
    store.write_parquet("exact_duplicates/groups.parquet", groups.select(
        "key", pl.lit("image").alias("kind"), "group_id", "group_size", "representative",
        (pl.col("key") == pl.col("representative")).alias("is_representative"),
        pl.lit("merge").alias("action")).sort("kind", "group_id", "key"))
    non_rep = set(groups.filter(pl.col("key") != pl.col("representative"))["key"].to_list())
    store.write_parquet("semdedup/scores.parquet", f.select(
        "key", space.alias("space"), "cluster", (~pl.col("key").is_in(list(non_rep)))
        .alias("unique"), "score", "duplicate",
        pl.format("k{}", (pl.col("i") - 1).cast(pl.Utf8).str.zfill(7)).alias("partner")))
    near = f.filter(pl.col("i") % 100 == 6).select("i")
    near = pl.concat([near, near.with_columns(pl.col("i") + 1)]).filter(pl.col("i") < f.height)
    near = near.join(f, on="i").with_columns(
        pl.col("key").min().over(pl.col("i") // 100).alias("near_group"),
        pl.len().over(pl.col("i") // 100).cast(pl.UInt32).alias("near_group_size"))
    store.write_parquet("exact_duplicates/near_groups.parquet", near.select(
        "key", "near_group", "near_group_size").sort("near_group", "key"))
    store.write_parquet("ppl_deciles/deciles.parquet", f.select(
        "key", "ppl", "source", "decile", pl.col("decile").alias("global_decile")))
