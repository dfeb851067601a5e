"""synthetic_checked (one partition per generator spec): the rendered samples of a spec
through the corpus checks (hashing and dedup, text-quality flags, perplexity); mixtures read
only the samples it keeps. Why a per-spec asset and not an ingest of synthetic shards as
corpus shards: :mod:`mm_assets.core.synth.checked`."""

from dagster import Failure, MaterializeResult, MetadataValue, asset

from mm_assets.assets._common import Timer, global_result, write_quarantine
from mm_assets.checks import counts_spec, upstream_result, upstream_spec
from mm_assets.config import dagster_config
from mm_assets.core import layout
from mm_assets.core.commits import read_commit, uncommit
from mm_assets.core.quality.ppl import PplConfig
from mm_assets.core.synth.checked import SynthCheckConfig, check_spec
from mm_assets.core.synth.spec import load_spec
from mm_assets.partitions import GPU_POOL, GPU_TAGS, synthetic_specs
from resources.models import LanguageModelResource
from resources.storage import StorageResource

ASSET = "synthetic_checked"
SyntheticCheckedConfig = dagster_config(SynthCheckConfig, "SyntheticCheckedConfig")


@asset(partitions_def=synthetic_specs, deps=["synthetic"], group_name="synthetic",
       check_specs=[counts_spec(ASSET), upstream_spec(ASSET, "synthetic")],
       kinds={"webdataset", "pytorch"}, op_tags=GPU_TAGS, pool=GPU_POOL)
def synthetic_checked(context, config: SyntheticCheckedConfig, storage: StorageResource,
                      lm: LanguageModelResource) -> MaterializeResult:
    """``synthetic/{spec}/checked/{i:05d}.tar``: the spec's committed rendered samples minus
    exact duplicates (within the spec and of corpus images), text-quality filters and, when
    set, too high perplexity, each removal with its reason in ``decisions.parquet`` (with the
    pHash near-duplicate group, perplexity and flags of every key); ``hashes``,
    ``text_quality`` and ``ppl`` tables in the corpus schemas; ``stats.json``."""
    store, name, cfg = storage.store(), context.partition_key, config.core()
    rec = read_commit(store, "synthetic", name)
    if rec is None:
        raise Failure(f"synthetic[{name}] has no commit record under {store.url('')}: "
                      f"materialize synthetic[{name}] first")
    uncommit(store, ASSET, name)
    spec = load_spec(store, name)
    scorer = lm.ppl_scorer(PplConfig())
    with Timer() as t:
        res = check_spec(store, spec, sorted(p for p in rec["outputs"] if p.endswith(layout.TAR)),
                         scorer.score, cfg)
    write_quarantine(store, ASSET, name, res.quarantine)
    kept = res.stats["kept"]
    upstream = upstream_result("synthetic", {name: res.counts}, {name: rec["counts"]["n_out"]})
    result = global_result(store, ASSET, res.counts, res.paths, {
        "spec": name, "seconds": t.seconds, "ppl_model": scorer.name,
        "near_groups": res.stats["near_groups"],
        "samples_in_near_groups": res.stats["samples_in_near_groups"],
        "ppl_median": res.stats["ppl"].get("median"),
        "flags": MetadataValue.json(res.stats["flags"]),
        "kept_uniformity_p_value": kept.get("uniformity", {}).get("p_value"),
        "kept_answer_distribution": MetadataValue.json(kept["answer_distribution"]),
        "stats": store.url(layout.synthetic_checked_stats(name))},
        checks=[upstream], digests=False, partition=name)
    if not upstream.passed:  # read other shards than synthetic committed: not consumable
        uncommit(store, ASSET, name)
    return result
