"""Training mixtures from YAML recipes.

A recipe names a source (``raw`` = the baseline, ``exact_dedup`` = raw minus exact-dedup
removals, ``curated``, ``merged`` or ``rephrased``), optional per-cluster weights, an optional
text:multimodal ratio, an optional perplexity-decile range, a total size in samples, a seed and
an output shard size. Counts per modality follow the ratio exactly (largest-remainder
rounding, so they differ from the exact proportion by less than one sample). The seeded draw
itself is :func:`mm_assets.core.mixture.draw`. When a modality has too few samples the build fails naming the shortfall,
unless ``on_shortfall: downsample`` scales the whole mixture down to what is available.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

SOURCES = ("raw", "exact_dedup", "curated", "merged", "rephrased")
MODALITIES = ("text", "multimodal")


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class Recipe:
    """A validated mixture recipe (see module doc)."""

    name: str
    source: Literal["raw", "exact_dedup", "curated", "merged", "rephrased"] = "curated"
    total: int | None = None
    ratio: dict[str, float] = field(default_factory=dict)
    deciles: tuple[int, int] = (0, 9)
    seed: int = 0
    shard_size: int = 1000
    on_shortfall: Literal["fail", "downsample"] = "fail"
    description: str = ""
    cluster_weights: dict[str, float] = field(default_factory=dict)
    replacement: bool = False
    min_answer_tokens: int = 0

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise RecipeError(f"name: must be non-empty [A-Za-z0-9_-], got {self.name!r}")
        if self.source not in SOURCES:
            raise RecipeError(f"source: must be one of {SOURCES}, got {self.source!r}")
        if self.total is not None and (not isinstance(self.total, int) or self.total <= 0):
            raise RecipeError(f"total: must be a positive integer, got {self.total!r}")
        for k, v in self.ratio.items():
            if k not in MODALITIES or not isinstance(v, (int, float)) or v < 0:
                raise RecipeError(f"ratio: keys {MODALITIES} with weights >= 0, got {k}={v!r}")
        if self.ratio and sum(self.ratio.values()) <= 0:
            raise RecipeError("ratio: weights must not all be 0")
        lo, hi = self.deciles
        if not 0 <= lo <= hi <= 9:
            raise RecipeError(f"deciles: need 0 <= lo <= hi <= 9, got {self.deciles}")
        if self.shard_size <= 0:
            raise RecipeError(f"shard_size: must be > 0, got {self.shard_size}")
        for k, v in self.cluster_weights.items():
            if not isinstance(v, (int, float)) or v < 0 or ":" not in str(k):
                raise RecipeError(f"cluster_weights: keys like 'image:3' or 'text:0' with "
                                  f"weights >= 0, got {k}={v!r}")
        if not isinstance(self.min_answer_tokens, int) or self.min_answer_tokens < 0:
            raise RecipeError(f"min_answer_tokens: must be an integer >= 0, "
                              f"got {self.min_answer_tokens!r}")
        if self.on_shortfall not in ("fail", "downsample"):
            raise RecipeError(f"on_shortfall: fail or downsample, got {self.on_shortfall!r}")


def parse_recipe(text: str) -> Recipe:
    """Recipe from YAML text.

    Raises:
        RecipeError: unknown field, wrong type or value (message names the field).
    """
    data: Any = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise RecipeError("recipe must be a YAML mapping")
    known = set(Recipe.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise RecipeError(f"unknown field(s) {unknown}; known: {sorted(known)}")
    if "deciles" in data:
        d = data["deciles"]
        if not (isinstance(d, list) and len(d) == 2 and all(isinstance(x, int) for x in d)):
            raise RecipeError(f"deciles: expected [lo, hi] integers, got {d!r}")
        data["deciles"] = tuple(d)
    for name in ("ratio", "cluster_weights"):
        if name in data and not isinstance(data[name], dict):
            raise RecipeError(f"{name}: expected a mapping, got {data[name]!r}")
    return Recipe(**data)


def split_counts(total: int, ratio: dict[str, float]) -> dict[str, int]:
    """Integer counts summing to ``total`` in proportion to ``ratio`` (largest remainder)."""
    s = sum(ratio.values())
    exact = {k: total * v / s for k, v in ratio.items()}
    counts = {k: math.floor(x) for k, x in exact.items()}
    rest = total - sum(counts.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - counts[k]), k))[:rest]:
        counts[k] += 1
    return counts


def plan_counts(recipe: Recipe, available: dict[str, int]) -> dict[str, int]:
    """Samples to draw per modality.

    Raises:
        RecipeError: a modality runs short and ``on_shortfall`` is ``fail``.
    """
    ratio = {k: v for k, v in (recipe.ratio or {m: available.get(m, 0) for m in MODALITIES}
                               ).items() if v > 0}
    if not ratio:
        return {m: 0 for m in MODALITIES}
    s = sum(ratio.values())
    feasible = min(math.floor(available.get(m, 0) * s / w + 1e-9) for m, w in ratio.items())
    total = recipe.total if recipe.total is not None else feasible
    counts = split_counts(total, ratio)
    short = {m: n - available.get(m, 0) for m, n in counts.items() if n > available.get(m, 0)}
    if short and recipe.on_shortfall == "fail":
        detail = ", ".join(f"{m}: need {counts[m]}, have {available.get(m, 0)} (short by {d})"
                           for m, d in sorted(short.items()))
        raise RecipeError(f"recipe {recipe.name!r}: not enough samples in source "
                          f"{recipe.source!r}: {detail}")
    if short:
        counts = split_counts(feasible, ratio)
        while any(counts[m] > available.get(m, 0) for m in counts):
            feasible -= 1
            counts = split_counts(feasible, ratio)
    return {m: counts.get(m, 0) for m in MODALITIES}
