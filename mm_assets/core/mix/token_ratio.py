"""``ratio_by: tokens``: strata sized by their share of ``total_tokens`` instead of samples.

With ``ratio: {curated: 3, web_docs: 1}``, ``total_tokens: T`` and ``ratio_by: tokens``, the
stratum ``k`` targets ``T × w_k / Σw`` tokens (text + image tokens under ``token_scheme``) and
draws the smallest number of its samples whose tokens reach that target (binary search; within
a stratum the draw of n samples is a prefix of the draw of n + 1, so tokens grow with n). Each
stratum's realised tokens therefore exceed its target by less than one of its samples (one
document or document part for an interleaved stratum), and the total by less than one sample
per stratum. Useful when documents of thousands of tokens mix with short conversations: a
sample ratio says little about what the model sees.

When a stratum holds fewer tokens than its target, ``on_shortfall: fail`` names it and the
shortfall; ``downsample`` scales every target by the same factor (the token ratio is kept).
"""

from __future__ import annotations

from mm_assets.core.mix.recipe import Recipe, RecipeError


def _tokens(plan, stratum: str, n: int) -> int:
    picks, _, _ = plan.pick({stratum: n})
    return sum(c.tokens() for c in picks)


def _smallest(plan, stratum: str, target: float) -> int:
    lo, hi = 0, plan.available.get(stratum, 0)
    while lo < hi:
        mid = (lo + hi) // 2
        if _tokens(plan, stratum, mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def counts_for_token_shares(plan, recipe: Recipe) -> dict[str, int]:
    """Samples per stratum so each stratum reaches its token share (module doc).

    Args:
        plan: the draw's ``_Plan`` (``available`` per stratum and ``pick(counts)``).
        recipe: with ``ratio``, ``total_tokens`` and ``ratio_by: tokens``.

    Returns:
        ``{stratum: samples}`` for every stratum of the ratio or the candidates.

    Raises:
        RecipeError: a stratum holds fewer tokens than its share and ``on_shortfall`` is
            ``fail``.
    """
    ratio = {k: v for k, v in recipe.ratio.items() if v > 0}
    s = sum(ratio.values())
    targets = {k: recipe.total_tokens * w / s for k, w in ratio.items()}
    most = {k: _tokens(plan, k, plan.available.get(k, 0)) for k in ratio}
    short = {k: t - most[k] for k, t in targets.items() if most[k] < t}
    if short and recipe.on_shortfall == "fail":
        detail = ", ".join(f"{k}: need {targets[k]:,.0f} tokens, have {most[k]:,} (short by "
                           f"{d:,.0f})" for k, d in sorted(short.items()))
        raise RecipeError(f"recipe {recipe.name!r}: ratio_by tokens ({recipe.token_scheme} "
                          f"image tokens): {detail}")
    if short:
        scale = min(most[k] / t for k, t in targets.items())
        targets = {k: t * scale for k, t in targets.items()}
    keys = sorted(set(plan.available) | set(recipe.ratio))
    counts = {k: _smallest(plan, k, t) for k, t in targets.items()}
    return {k: counts.get(k, 0) for k in keys}
