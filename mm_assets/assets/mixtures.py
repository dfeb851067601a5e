"""mixtures (one partition per recipe): WebDataset shards + manifest.json + lineage.json."""

from dataclasses import asdict

import polars as pl
from dagster import AllPartitionMapping, AssetDep, AssetKey, MaterializeResult, MetadataValue, asset

from mm_assets.assets._common import Timer, global_result, write_quarantine
from mm_assets.checks import counts_spec
from mm_assets.core import layout, schemas
from mm_assets.core.interleaved.tokens import SCHEMES
from mm_assets.core.mix.build import ASSET_DIRS, collect, write_mixture
from mm_assets.core.mix.draw import REPORT_SCHEMES, draw, summarise, token_counter
from mm_assets.core.mix.registry import load_recipe
from mm_assets.partitions import recipes
from resources.storage import StorageResource

SAMPLE_FIELDS = ("origin", "modality", "cluster", "decile", "image_tokens", "text_tokens",
                 "n_images")


DOC_ASSETS = {"docs": "interleaved_docs", "docs_curated": "docs_curated"}  # {interleaved: ...}
SETTINGS = {"exact_duplicates": ("policy",),
            "semdedup": ("image_epsilon", "text_epsilon", "target_fraction", "ranking"),
            "ppl_deciles": ("scope",), "curated": ("text_filters",)}


def _curation_settings(context) -> dict:
    """``{asset.field: value}`` of the upstream curation settings in force at this build (from
    the latest materialization of each asset of :data:`SETTINGS`), shown per row by
    ``mm-assets eval compare``."""
    out = {}
    for up, fields in SETTINGS.items():
        ev = context.instance.get_latest_materialization_event(AssetKey(up))
        md = ev.asset_materialization.metadata if ev and ev.asset_materialization else {}
        out |= {f"{up}.{f}": md[f].value for f in fields if f in md}
    return out


def _lineage(context, recipe, found) -> dict:
    """Latest materialization (run id, time) of each upstream asset the recipe read, and the
    URL + content digest of each external source."""
    out = {}
    used = {ASSET_DIRS[s.asset] for s in recipe.sources if s.asset} | {"clusters"}
    used |= {"exact_duplicates"} if any(s.asset == "exact_dedup" for s in recipe.sources) else set()
    for up in sorted(used):
        ev = context.instance.get_latest_materialization_event(AssetKey(up))
        out[up] = {"run_id": ev.run_id, "timestamp": ev.timestamp} if ev else None
    out["settings"] = _curation_settings(context)
    for s in recipe.sources:
        if s.wds:
            out[f"wds:{s.name}"] = {"url": s.wds,
                                    "digest_xxh3": found.sources[s.name]["digest_xxh3"]}
        if s.interleaved:
            up = DOC_ASSETS.get(s.interleaved)
            ev = context.instance.get_latest_materialization_event(AssetKey(up)) if up else None
            out[f"interleaved:{s.name}"] = {"documents": s.interleaved, "digest_xxh3":
                                            found.sources[s.name]["digest_xxh3"],
                                            "run_id": ev.run_id if ev else None}
        if s.synthetic:
            ev = context.instance.get_latest_materialization_event(
                AssetKey("synthetic_checked"))
            out[f"synthetic:{s.name}"] = {
                "spec": s.synthetic, "digest_xxh3": found.sources[s.name]["digest_xxh3"],
                "run_id": ev.run_id if ev else None}
        if s.mined:
            out[f"mined:{s.name}"] = {"mining_recipe": s.mined,
                                      "digest_xxh3": found.sources[s.name]["digest_xxh3"]}
    return out


# a recipe draws from every partition of its per-shard / per-spec / per-recipe sources: all of
# them are upstream of each recipe (not the same-named one: backfills failed, tryout S3)
PER_PARTITION_SOURCES = ("raw_shards", "curated", "synthetic_checked", "mined", "interleaved_docs",
                         "docs_curated")


@asset(partitions_def=recipes, deps=["exact_duplicates", "clusters", "merged", "rephrased", *(
           AssetDep(k, partition_mapping=AllPartitionMapping()) for k in PER_PARTITION_SOURCES)],
       group_name="mixtures", check_specs=[counts_spec("mixtures")], kinds={"webdataset"})
def mixtures(context, storage: StorageResource) -> MaterializeResult:
    """``mixtures/{recipe}/{i:05d}.tar`` drawn per the recipe (sources, ratio, total in samples
    or tokens, decile and cluster weights, shard size in samples or bytes); ``manifest.json``
    (recipe, seed, per-sample source key, origin, cluster, decile and token estimates, totals
    per source/modality/decile/cluster, source digests) and ``lineage.json`` (run ids of the
    upstream materializations, digests of external sources)."""
    store, name = storage.store(), context.partition_key
    recipe, count = load_recipe(store, name), token_counter()
    clusters = {}
    if store.exists(layout.CLUSTER_ASSIGNMENTS):  # e.g. an interleaved-only root has none
        a = store.read_table(layout.CLUSTER_ASSIGNMENTS, schemas.subset(
            schemas.CLUSTER_ASSIGNMENTS, "key", "space", "cluster"))
        clusters = dict(zip(a["key"], (a["space"] + ":" + a["cluster"].cast(pl.Utf8)),
                            strict=True))
    elif recipe.cluster_weights:
        raise FileNotFoundError(f"recipe {name!r} has cluster_weights but clusters was never "
                                f"materialized ({store.url(layout.CLUSTER_ASSIGNMENTS)} "
                                "missing): materialize clusters first")
    with Timer() as t:
        found = collect(store, recipe, clusters, count)
        d = draw(list(found.cands.values()), recipe)
        paths = write_mixture(store, recipe, layout.mixture_dir(name), d, found)
    write_quarantine(store, "mixtures", name, found.quarantine)
    cands, counts = found.cands, found.counts
    counts.n_out = len({ck for _, ck in d.order})  # out = distinct source samples drawn
    counts.removed["not_sampled"] = len(cands) - counts.n_out
    summary = summarise(cands, d, recipe.token_scheme)
    manifest = {"recipe": asdict(recipe), "seed": recipe.seed, "counts": d.per_modality,
                "per_stratum": d.per_stratum, "per_cluster": d.per_cluster,
                "with_replacement": d.with_replacement,
                "tokens": {"scheme": recipe.token_scheme, "target": d.target_tokens,
                           "realised": d.tokens},
                "source": {"samples": counts.n_in, "eligible": len(cands),
                           "removed": dict(counts.removed),
                           "quarantined": dict(counts.quarantined),
                           "filtered_min_answer_tokens":
                               counts.removed.get("filtered_min_answer_tokens", 0),
                           "per_source": found.sources},
                "summary": summary, "shards": paths,
                "token_schemes": {**{s: SCHEMES.get(s, s) for s in (
                    recipe.token_scheme, *REPORT_SCHEMES)}, "text": "SmolLM2 tokenizer"},
                "samples": [{"key": k, "source_key": cands[ck].source_key,
                             **{f: getattr(cands[ck], f) for f in SAMPLE_FIELDS}}
                            for k, ck in d.order]}
    store.write_json(layout.mixture_manifest(name), manifest)  # same recipe+data: same bytes
    store.write_json(layout.mixture_lineage(name),
                     {"upstream": _lineage(context, recipe, found)})
    return global_result(store, "mixtures", counts, paths, {
        "recipe": name, "samples_written": len(d.order),
        "repeats": len(d.order) - counts.n_out, **dict(d.per_modality.items()),
        **{f"stratum {k}": v for k, v in d.per_stratum.items()},
        **{f"tokens_{k}": v for k, v in summary["tokens"].items()},
        "tokens_realised": d.tokens, "with_replacement": d.with_replacement,
        "summary": MetadataValue.json({"per_stratum": d.per_stratum, **summary}),
        "shards": len(paths), "manifest": store.url(layout.mixture_manifest(name)),
        "seconds": t.seconds}, digests=False, partition=name)
