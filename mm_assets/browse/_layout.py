"""Storage paths the browser reads (the names mirror ``mm_assets.core.layout``; to be replaced
by it once it lands)."""

from __future__ import annotations


def raw_shard(shard: str) -> str:
    return f"raw_shards/{shard}.tar"


def image_hashes(shard: str) -> str:
    return f"image_hashes/{shard}.parquet"


def ppl_scores(shard: str) -> str:
    return f"ppl_scores/{shard}.parquet"


def curated_decisions(shard: str) -> str:
    return f"curated/{shard}.decisions.parquet"


def quarantine_dir(stage: str) -> str:
    return f"quarantine/{stage}"


def exact_groups() -> str:
    return "exact_duplicates/groups.parquet"


def near_groups() -> str:
    return "exact_duplicates/near_groups.parquet"


def cluster_assignments() -> str:
    return "clusters/assignments.parquet"


def semdedup_scores() -> str:
    return "semdedup/scores.parquet"


def ppl_deciles() -> str:
    return "ppl_deciles/deciles.parquet"


def galleries_dir(asset: str) -> str:
    return f"galleries/{asset}"


def raw_shard_ids(store) -> list[str]:
    """Shard ids with a raw shard tar, sorted."""
    return [n[: -len(".tar")] for n in store.ls("raw_shards", ".tar")]


def curated_decision_files(store) -> list[tuple[str, str]]:
    """``(shard, path)`` of every curated decision table."""
    suffix = ".decisions.parquet"
    return [(n[: -len(suffix)], f"curated/{n}") for n in store.ls("curated", suffix)]


def quarantine_files(store) -> list[tuple[str, str]]:
    """``(shard, path)`` of every quarantine table of every stage."""
    return [(n[: -len(".parquet")], f"quarantine/{st}/{n}") for st in store.ls("quarantine")
            for n in store.ls(f"quarantine/{st}", ".parquet")]
