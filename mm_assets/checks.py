"""Asset checks: the accounting invariant ``in = out + removed + quarantined`` at every stage,
and the image-token rule of merged samples."""

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
