"""mixtures (one partition per recipe): WebDataset shards + manifest.json + lineage.json."""

from dataclasses import asdict

import polars as pl
import xxhash
from dagster import AssetKey, MaterializeResult, asset

from mm_assets.assets._common import (
    Timer,
    read_shard,
    read_sharded,
    upstream_shards,
    write_sharded,
)
from mm_assets.checks import counts_result, counts_spec
from mm_assets.core.mixing import Recipe
from mm_assets.core.mixture import candidate, draw, source_digest, summarise, token_counter
from mm_assets.core.recipes import load_recipe
from mm_assets.core.records import Sample, StageCounts
from mm_assets.core.storage import Store
from mm_assets.partitions import recipes
from resources.storage import StorageResource

SOURCE_ASSET = {"raw": "raw_shards", "exact_dedup": "raw_shards", "curated": "curated",
                "merged": "merged", "rephrased": "rephrased"}


def source_samples(store: Store, recipe: Recipe):
    """Samples of the recipe's source, within its decile range."""
    if recipe.source in ("raw", "exact_dedup", "curated"):
        asset = SOURCE_ASSET[recipe.source]
        drop: set = set()
        if recipe.source == "exact_dedup":
            g = store.read_parquet("exact_duplicates/groups.parquet")
            drop = set(g.filter(pl.col("action") == "remove")["key"].to_list())
        stream = (s for shard in upstream_shards(store, asset, ".tar")
                  for s in read_shard(store, asset, shard) if s.key not in drop)
    else:
        stream = read_sharded(store, recipe.source)
    lo, hi = recipe.deciles
    for s in stream:
        if (lo, hi) == (0, 9) or lo <= s.metadata.get("ppl_decile", -1) <= hi:
            yield s


def _picked(store: Store, recipe: Recipe, order: list[tuple[str, str]]):
    wanted = {src for _, src in order}
    by_key = {s.key: s for s in source_samples(store, recipe) if s.key in wanted}
    for out_key, src in order:
        s = by_key[src]
        yield Sample(out_key, s.conversations, s.images, s.image_exts, s.source,
                     {**s.metadata, "source_key": src, "source_asset": recipe.source})


@asset(partitions_def=recipes, deps=["raw_shards", "exact_duplicates", "clusters", "curated",
                                     "merged", "rephrased"],
       group_name="mixtures", check_specs=[counts_spec("mixtures")], kinds={"webdataset"})
def mixtures(context, storage: StorageResource) -> MaterializeResult:
    """``mixtures/{recipe}/{i:05d}.tar`` drawn per the recipe; ``manifest.json`` (recipe, seed,
    per-sample source key, cluster, decile and token estimates, totals, source digest) and
    ``lineage.json`` (run ids of the upstream materializations)."""
    store, name = storage.store(), context.partition_key
    recipe, count = load_recipe(store, name), token_counter()
    a = store.read_parquet("clusters/assignments.parquet")
    clusters = dict(zip(a["key"], (a["space"] + ":" + a["cluster"].cast(pl.Utf8)), strict=True))
    digest = xxhash.xxh3_128()
    seen, filtered = 0, 0
    with Timer() as t:
        cands = {}
        for s in source_samples(store, recipe):
            seen += 1
            source_digest(digest, s)
            if recipe.min_answer_tokens and count("\n".join(
                    x["value"] for x in s.conversations if x["from"] == "gpt"
            )) < recipe.min_answer_tokens:
                filtered += 1
                continue
            cands[s.key] = candidate(s, clusters.get(s.key, "none"), count)
        d = draw(list(cands.values()), recipe)
        paths = write_sharded(store, f"mixtures/{name}", _picked(store, recipe, d.order),
                              recipe.shard_size)
    manifest = {"recipe": asdict(recipe), "seed": recipe.seed, "counts": d.per_modality,
                "per_cluster": d.per_cluster, "with_replacement": d.with_replacement,
                "source": {"asset": recipe.source, "digest_xxh3": digest.hexdigest(),
                           "samples": seen, "eligible": len(cands),
                           "filtered_min_answer_tokens": filtered},
                "summary": summarise(cands, d), "shards": paths,
                "token_schemes": {"fixed": "729 per image", "native": "ceil(w/14)*ceil(h/14), "
                                  "cap 16384", "text": "SmolLM2 tokenizer"},
                "samples": [{"key": k, "source_key": src, **{f: getattr(cands[src], f) for f in (
                    "modality", "cluster", "decile", "tokens_fixed", "tokens_native",
                    "text_tokens")}} for k, src in d.order]}
    store.write_json(f"mixtures/{name}/manifest.json", manifest)  # same recipe+data: same bytes
    upstream = {}
    for up in sorted(set(SOURCE_ASSET.values()) | {"clusters"}):
        ev = context.instance.get_latest_materialization_event(AssetKey(up))
        upstream[up] = {"run_id": ev.run_id, "timestamp": ev.timestamp} if ev else None
    store.write_json(f"mixtures/{name}/lineage.json", {"upstream": upstream})
    distinct = len({src for _, src in d.order})  # out = distinct source samples drawn
    counts = StageCounts(seen, distinct)
    counts.removed["not_sampled"] = len(cands) - distinct
    counts.removed["filtered_min_answer_tokens"] = filtered
    return MaterializeResult(metadata={
        **counts.as_metadata(), "recipe": name, "samples_written": len(d.order),
        "repeats": len(d.order) - distinct, **{m: n for m, n in d.per_modality.items()},
        **{f"tokens_{k}": v for k, v in manifest["summary"]["tokens"].items()},
        "with_replacement": d.with_replacement, "shards": len(paths),
        "manifest": store.url(f"mixtures/{name}/manifest.json"), "seconds": t.seconds},
        check_results=[counts_result(counts)])
