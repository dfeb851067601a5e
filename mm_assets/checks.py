"""Asset checks: the accounting invariant ``in = out + removed + quarantined`` at every stage."""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec

from mm_assets.core.records import StageCounts

COUNTS_CHECK = "counts_reconcile"


def counts_spec(asset: str) -> AssetCheckSpec:
    return AssetCheckSpec(COUNTS_CHECK, asset=asset,
                          description="n_in == n_out + removed + quarantined")


def counts_result(counts: StageCounts) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=COUNTS_CHECK, passed=counts.reconciles(),
        severity=AssetCheckSeverity.ERROR,
        metadata={"n_in": counts.n_in, "n_out": counts.n_out, "removed": counts.n_removed,
                  "quarantined": counts.n_quarantined})
