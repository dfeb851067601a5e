"""Partitions: one dynamic partition per shard, one per mixture recipe, one per synthetic
spec."""

from __future__ import annotations

import warnings

from dagster import BackfillPolicy, BetaWarning, DynamicPartitionsDefinition

# BackfillPolicy on assets is a Dagster beta parameter we rely on on purpose; say so once, in
# the README, rather than on every import of the definitions.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=BetaWarning)

shards = DynamicPartitionsDefinition(name="shards")
recipes = DynamicPartitionsDefinition(name="recipes")
# one partition per synthetic-data spec (mm_assets/synthetic/*.yaml, {root}/synthetic/*.yaml)
synthetic_specs = DynamicPartitionsDefinition(name="synthetic")
# one partition per interleaved document shard (mm-assets interleaved ingest; docs/{shard}.tar)
doc_shards = DynamicPartitionsDefinition(name="doc_shards")
# one partition per shard of a registered external image pool: "{pool}__{shard stem}"
# (mm-assets pool add; mm_assets.core.mine.pool)
pool_shards = DynamicPartitionsDefinition(name="pool_shards")
# one partition per mining recipe (mm_assets/mining/*.yaml, {root}/mining/*.yaml)
mining = DynamicPartitionsDefinition(name="mining")
# one partition per SemDeDup cluster range of the current plan: "{space}__r{i:04d}__p{plan id}"
# (registered by semdedup_plan, withdrawn by clusters; mm_assets.core.semantic.semdedup_plan)
semdedup_ranges = DynamicPartitionsDefinition(name="semdedup_ranges")

# Backfills of many shards run several partitions per run, so run start-up does not dominate.
shard_backfill = BackfillPolicy.multi_run(max_partitions_per_run=16)
# Model assets run in the `gpu` concurrency pool (limit set in the instance:
# `dagster instance concurrency set gpu 1`) and request one GPU per pod on Kubernetes.
GPU_POOL = "gpu"

# What runs when (README "Automation"): new shards -> the per-shard chain, started by the
# new-data sensor; global stages by the nightly schedule (or on request); curated, merged and
# rephrased after them by declarative automation once all their inputs were refreshed.
GLOBAL_CRON = "0 2 * * *"
CURATE_CRON = "0 3 * * *"
GPU_TAGS = {"dagster-k8s/config": {"container_config": {"resources": {
    "limits": {"nvidia.com/gpu": "1"}}}}}


def parse_recipe_spec(spec: str, known: list[str], default: list[str] | None = None
                      ) -> list[str]:
    """Recipe names from ``a,b``, globs (``ppl_*``) or ``all``, checked against ``known``.

    Args:
        spec: names/globs; ``all`` or ``*``: every known recipe; empty: ``default``.
        known: every recipe that can be named (shipped examples and the root's own).
        default: what an empty spec means (default: ``known``).

    Raises:
        ValueError: a name matches no known recipe.
    """
    import fnmatch

    if not spec.strip():
        return list(known if default is None else default)
    if spec.strip() in ("all", "*"):
        return list(known)
    wanted: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        hits = [k for k in known if fnmatch.fnmatchcase(k, part)]
        if not hits:
            raise ValueError(f"unknown recipe {part!r}; known: {sorted(known)}")
        wanted.extend(hits)
    return list(dict.fromkeys(wanted))


def parse_shard_spec(spec: str, known: list[str]) -> list[str]:
    """Shard ids from ``0-99``, ``3,5,7``, ``0000*`` or ``all``, checked against ``known``.

    Linear in ``len(known)`` plus the shards named (one set of the known ids, built once;
    each glob scans ``known`` once): ``0-11999`` over 12,000 shards takes milliseconds.

    Raises:
        ValueError: a shard in the spec is not a known partition, or the spec is malformed.
    """
    import fnmatch

    spec = spec.strip()
    if spec in ("", "all", "*"):
        return list(known)
    width = len(known[0]) if known else 6
    wanted: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        if any(c in part for c in "*?["):
            wanted.extend(fnmatch.filter(known, part))
        elif "-" in part:
            lo, _, hi = part.partition("-")
            if not (lo.isdigit() and hi.isdigit()) or int(lo) > int(hi):
                raise ValueError(f"bad shard range {part!r}: expected LO-HI with LO <= HI")
            wanted.extend(f"{i:0{width}d}" for i in range(int(lo), int(hi) + 1))
        elif part.isdigit():
            wanted.append(f"{int(part):0{width}d}")
        else:
            wanted.append(part)
    known_set = set(known)
    unknown = [w for w in wanted if w not in known_set]
    if unknown:
        raise ValueError(f"unknown shard(s) {unknown[:10]}{' ...' if len(unknown) > 10 else ''};"
                         f" {len(known)} shards are known")
    return list(dict.fromkeys(wanted))
