"""Asset checks: the accounting invariant ``in = out + removed + quarantined`` at every stage,
and the image-token rule of merged samples."""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

from mm_assets.core.records import StageCounts

COUNTS_CHECK = "counts_reconcile"


def counts_spec(asset: str) -> AssetCheckSpec:
    """Blocking: a partition whose counts do not reconcile fails its run, and nothing
    downstream of it runs."""
    return AssetCheckSpec(COUNTS_CHECK, asset=asset, blocking=True,
                          description="n_in == n_out + removed + quarantined for every "
                                      "partition of the run (blocking)")


def counts_result(per: StageCounts | dict[str, StageCounts]) -> AssetCheckResult:
    """One check result over the run's partitions (``partition -> counts``), failing and
    naming each partition whose own counts do not reconcile."""
    if isinstance(per, StageCounts):
        per = {"": per}
    bad = {k: c for k, c in per.items() if not c.reconciles()}
    n = {f: sum(getattr(c, f) for c in per.values()) for f in ("n_in", "n_out")}
    return AssetCheckResult(
        check_name=COUNTS_CHECK, passed=not bad, severity=AssetCheckSeverity.ERROR,
        description=("; ".join(f"partition {k or '-'}: {c.n_in} in != {c.n_out} out + "
                               f"{c.n_removed} removed + {c.n_quarantined} quarantined"
                               for k, c in list(bad.items())[:10]) or None),
        metadata={**n, "removed": sum(c.n_removed for c in per.values()),
                  "quarantined": sum(c.n_quarantined for c in per.values()),
                  "partitions": len(per), "not_reconciling": ", ".join(bad) or "none"})


def extra_counts_spec(asset: str, unit: str) -> AssetCheckSpec:
    """Blocking ``{unit}_reconcile`` check (e.g. ``images_reconcile``): the ``unit`` counts of
    each partition reconcile, and the partition read what ``upstream`` committed of that unit
    (when the stage has an upstream that counts it)."""
    return AssetCheckSpec(f"{unit}_reconcile", asset=asset, blocking=True,
                          description=f"{unit}: n_in == n_out + removed + quarantined for every "
                                      f"partition, n_in == upstream's {unit} n_out (blocking)")


def extra_counts_result(unit: str, per: dict[str, StageCounts],
                        expected: dict[str, int] | None = None) -> AssetCheckResult:
    """The ``{unit}_reconcile`` result over the run's partitions (``partition -> counts``);
    ``expected``: partition -> the upstream's committed ``unit`` n_out, compared with the
    partition's n_in (partitions absent from it: upstream does not count the unit)."""
    bad = {k: f"{c.n_in} in != {c.n_out} out + {c.n_removed} removed + "
              f"{c.n_quarantined} quarantined" for k, c in per.items() if not c.reconciles()}
    for k, c in per.items():
        if k in (expected or {}) and c.n_in != expected[k] and k not in bad:
            bad[k] = f"read {c.n_in}, upstream committed {expected[k]}"
    return AssetCheckResult(
        check_name=f"{unit}_reconcile", passed=not bad, severity=AssetCheckSeverity.ERROR,
        description="; ".join(f"partition {k}: {unit} {why}"
                              for k, why in list(bad.items())[:10]) or None,
        metadata={f"{unit}_in": sum(c.n_in for c in per.values()),
                  f"{unit}_out": sum(c.n_out for c in per.values()),
                  f"{unit}_removed": sum(c.n_removed for c in per.values()),
                  f"{unit}_quarantined": sum(c.n_quarantined for c in per.values()),
                  "partitions": len(per), "not_reconciling": ", ".join(bad) or "none"})


UPSTREAM_CHECK = "input_matches_upstream"


def upstream_spec(asset: str, upstream: str = "raw_shards") -> AssetCheckSpec:
    """Blocking cross-stage check: each shard read every sample ``upstream`` committed."""
    return AssetCheckSpec(UPSTREAM_CHECK, asset=asset, blocking=True,
                          description=f"n_in of each shard == {upstream}'s committed n_out "
                                      "for that shard (blocking)")


def upstream_result(upstream: str, per: dict[str, StageCounts],
                    expected: dict[str, int | None]) -> AssetCheckResult:
    """``expected``: shard -> ``upstream``'s committed n_out (None: not committed)."""
    bad = {k: (c.n_in, expected.get(k)) for k, c in per.items() if c.n_in != expected.get(k)}
    return AssetCheckResult(
        check_name=UPSTREAM_CHECK, passed=not bad, severity=AssetCheckSeverity.ERROR,
        description=("; ".join(f"shard {k}: read {got}, {upstream} committed "
                               f"{'nothing' if want is None else want}"
                               for k, (got, want) in list(bad.items())[:10]) or None),
        metadata={"upstream": upstream, "partitions": len(per),
                  "mismatched": ", ".join(bad) or "none"})


IMAGE_TOKEN_CHECK = "image_token_rule"


def image_token_spec(asset: str) -> AssetCheckSpec:
    return AssetCheckSpec(IMAGE_TOKEN_CHECK, asset=asset, blocking=True,
                          description="one <image> token per image, all in the first human turn")


def image_token_result(n_samples: int, problems: list[tuple[str, str]]) -> AssetCheckResult:
    """``problems``: ``(key, why)`` per sample breaking the rule (first 20 shown)."""
    return AssetCheckResult(
        check_name=IMAGE_TOKEN_CHECK, passed=not problems, severity=AssetCheckSeverity.ERROR,
        metadata={"samples": n_samples, "violations": len(problems),
                  "examples": "; ".join(f"{k}: {why}" for k, why in problems[:20]) or "none"})
