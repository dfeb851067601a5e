"""Training-mixture recipes (YAML): validation and the per-stratum sample counts.

A recipe names its sources — asset sources (``raw`` = the baseline, ``exact_dedup`` = raw
minus exact-dedup removals, ``curated``, ``merged``, ``rephrased``) and external WebDataset
prefixes (``{name: web, wds: "s3://bucket/shards/"}``) and synthetic-data specs
(``{synthetic: clocks_v1}``, the ``synthetic`` asset's partition) and interleaved documents
(``{interleaved: docs_curated}``, modality ``interleaved``, capped per document by
``max_doc_tokens`` with ``doc_overflow: split|drop``; :mod:`mm_assets.core.interleaved.budget`)
— a total size in samples (``total``) or in tokens (``total_tokens``, text tokens + image
tokens under ``token_scheme``: ``fixed``, ``anyres_max_9``, ``naflex_256``, ...;
:mod:`mm_assets.core.interleaved.tokens`), a ratio (counting samples, a document or
document part being one; or, with ``ratio_by: tokens`` and ``total_tokens``, each stratum's
share of the tokens: :mod:`mm_assets.core.mix.token_ratio`),
perplexity-decile range and weights, per-cluster weights, filters, a seed and an output shard
size in samples (``1000``) or bytes (``"256MB"``, ``"1GiB"``).

``ratio`` splits the mixture into strata. Its keys are all of one kind: modalities
(``{text: 1, multimodal: 3}``), source names (``{curated: 3, web: 1}``) or source/modality
pairs (``{curated/multimodal: 3, rephrased/text: 1}``). Stratum counts follow the ratio
exactly: largest-remainder rounding, so each differs from its exact share by less than one
sample. Without a ratio the strata are the modalities at their natural proportions. When a
stratum has too few samples the build fails naming it and the shortfall, unless
``on_shortfall: downsample`` scales the whole mixture down, keeping the ratio.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from mm_assets.core.interleaved.tokens import check_scheme, min_image_tokens

SOURCES = ("raw", "exact_dedup", "curated", "merged", "rephrased")
MODALITIES = ("text", "multimodal", "interleaved")
_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class RecipeError(ValueError):
    """A recipe that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One source of a recipe: an asset of this graph or an external WebDataset prefix.

    Attributes:
        name: the name used in ``ratio`` keys and the manifest (``[A-Za-z0-9_]``).
        asset: one of :data:`SOURCES`, or None for an external source.
        wds: URL or path of a folder of WebDataset ``.tar`` shards (local or fsspec, e.g.
            ``s3://bucket/prefix``), or None for an asset source.
        synthetic: name of a synthetic-data spec whose ``synthetic`` partition is read
            (``{synthetic: clocks_v1}``; name defaults to the spec name), or None.
    """

    name: str
    asset: str | None = None
    wds: str | None = None
    synthetic: str | None = None
    interleaved: str | None = None  # docs | docs_curated | a folder/prefix of document shards
    mined: str | None = None  # a mining recipe: its committed `mined` partition ({mined: R})


def parse_size(value: int | str) -> tuple[int | None, int | None]:
    """``shard_size`` as ``(samples, bytes)``: ``1000`` -> (1000, None); ``"256MB"`` ->
    (None, 256_000_000); ``"1GiB"`` -> (None, 2**30).

    Raises:
        RecipeError: not a positive integer or a size with a unit (B, KB, MB, GB, KiB, ...).
    """
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value, None
    m = _SIZE.match(value) if isinstance(value, str) else None
    if not m or float(m.group(1)) * _UNITS[m.group(2).lower()] < 1:
        raise RecipeError(f"shard_size: a positive sample count (1000) or a size with a unit "
                          f"('256MB', '1GiB'), got {value!r}")
    return None, int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _source(item: Any) -> SourceSpec:
    if isinstance(item, str):
        item = {"name": item}
    if not isinstance(item, dict) or set(item) - {"name", "asset", "wds", "synthetic",
                                                  "interleaved", "mined"}:
        raise RecipeError(f"sources: each item is an asset name or a mapping with keys name, "
                          f"asset, wds, synthetic or interleaved, got {item!r}")
    if item.get("interleaved") is not None:
        return _interleaved_source(item)
    if item.get("mined") is not None:
        return _mined_source(item)
    synth = item.get("synthetic")
    if synth is not None:
        if not isinstance(synth, str) or not _NAME.match(synth):
            raise RecipeError(f"sources: synthetic must be a spec name [A-Za-z0-9_], "
                              f"got {synth!r}")
        if set(item) & {"asset", "wds"}:
            raise RecipeError(f"sources: {synth!r}: synthetic takes no asset or wds")
        name = item.get("name", synth)
        if not isinstance(name, str) or not _NAME.match(name):
            raise RecipeError(f"sources: name must be non-empty [A-Za-z0-9_], got {name!r}")
        return SourceSpec(name, synthetic=synth)
    name = item.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise RecipeError(f"sources: name must be non-empty [A-Za-z0-9_], got {name!r}")
    asset, url = item.get("asset"), item.get("wds")
    if asset is None and url is None:
        asset = name
    if (asset is None) == (url is None):
        raise RecipeError(f"sources: {name!r} needs exactly one of asset or wds")
    if asset is not None and asset not in SOURCES:
        raise RecipeError(f"sources: {name!r}: asset must be one of {SOURCES}, got {asset!r}")
    if url is not None and (not isinstance(url, str) or not url):
        raise RecipeError(f"sources: {name!r}: wds must be a URL or path, got {url!r}")
    return SourceSpec(name, asset, url)


def _interleaved_source(item: dict) -> SourceSpec:
    """``{interleaved: docs | docs_curated | PATH}`` (name defaults to the asset's name)."""
    where = item["interleaved"]
    if not isinstance(where, str) or not (where in ("docs", "docs_curated") or "/" in where):
        raise RecipeError(f"sources: interleaved must be docs, docs_curated or a folder/URL of "
                          f"document shards, got {where!r}")
    if set(item) - {"name", "interleaved"}:
        raise RecipeError(f"sources: {where!r}: interleaved takes only a name")
    if "name" not in item and "/" in where:
        raise RecipeError(f"sources: interleaved {where!r} needs a name ([A-Za-z0-9_])")
    name = item.get("name", where)
    if not isinstance(name, str) or not _NAME.match(name):
        raise RecipeError(f"sources: name must be non-empty [A-Za-z0-9_], got {name!r}")
    return SourceSpec(name, interleaved=where)


def _mined_source(item: dict) -> SourceSpec:
    """``{mined: diversity_v1}``: the samples a mining recipe mined from an external pool
    (name defaults to the mining recipe's name)."""
    what = item["mined"]
    if not isinstance(what, str) or not _NAME.match(what):
        raise RecipeError(f"sources: mined must be a mining recipe name [A-Za-z0-9_], "
                          f"got {what!r}")
    if set(item) - {"name", "mined"}:
        raise RecipeError(f"sources: {what!r}: mined takes only a name")
    name = item.get("name", what)
    if not isinstance(name, str) or not _NAME.match(name):
        raise RecipeError(f"sources: name must be non-empty [A-Za-z0-9_], got {name!r}")
    return SourceSpec(name, mined=what)


def _weights(name: str, value: dict, key_ok) -> None:
    for k, v in value.items():
        if not key_ok(k) or isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise RecipeError(f"{name}: bad entry {k!r}: {v!r}")


@dataclass(frozen=True, slots=True)
class Recipe:
    """A validated mixture recipe (see module doc). ``source`` is shorthand for a single
    asset source; ``sources`` is filled from it when not given (``source`` is None when the
    recipe lists ``sources``)."""

    name: str
    source: Literal["raw", "exact_dedup", "curated", "merged", "rephrased"] | None = "curated"
    sources: tuple[SourceSpec, ...] = ()
    total: int | None = None
    total_tokens: int | None = None
    token_scheme: str = "fixed"
    ratio: dict[str, float] = field(default_factory=dict)
    deciles: tuple[int, int] = (0, 9)
    decile_weights: dict[int, float] = field(default_factory=dict)
    seed: int = 0
    shard_size: int | str = 1000
    on_shortfall: Literal["fail", "downsample"] = "fail"
    description: str = ""
    cluster_weights: dict[str, float] = field(default_factory=dict)
    replacement: bool = False
    min_answer_tokens: int = 0
    max_doc_tokens: int | None = None
    doc_overflow: Literal["split", "drop"] = "split"
    ratio_by: Literal["samples", "tokens"] = "samples"  # tokens: mm_assets.core.mix.token_ratio

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or not all(
                c.isalnum() or c in "_-" for c in self.name):
            raise RecipeError(f"name: must be non-empty [A-Za-z0-9_-], got {self.name!r}")
        if not self.sources:
            if self.source not in SOURCES:
                raise RecipeError(f"source: must be one of {SOURCES}, got {self.source!r}")
            object.__setattr__(self, "sources", (SourceSpec(self.source, self.source),))
        elif self.source is not None:
            raise RecipeError("source, sources: give one of them, not both")
        names = [s.name for s in self.sources]
        if len(set(names)) != len(names):
            raise RecipeError(f"sources: names must be unique, got {names}")
        for f in ("total", "total_tokens"):
            v = getattr(self, f)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                raise RecipeError(f"{f}: must be a positive integer, got {v!r}")
        if self.total is not None and self.total_tokens is not None:
            raise RecipeError("total, total_tokens: give one of them, not both")
        try:
            check_scheme(self.token_scheme)
        except ValueError as e:
            raise RecipeError(f"token_scheme: {e}") from None
        if self.max_doc_tokens is not None and (not isinstance(self.max_doc_tokens, int) or
                                                isinstance(self.max_doc_tokens, bool) or
                                                self.max_doc_tokens <= 0):
            raise RecipeError(f"max_doc_tokens: must be a positive integer, "
                              f"got {self.max_doc_tokens!r}")
        if self.max_doc_tokens is not None and any(s.interleaved for s in self.sources) and \
                self.max_doc_tokens < min_image_tokens(self.token_scheme):  # fits no image
            raise RecipeError(f"max_doc_tokens: {self.max_doc_tokens} is below the smallest "
                              f"image cost under {self.token_scheme} "
                              f"({min_image_tokens(self.token_scheme)} tokens): every document "
                              f"with an image would be removed")
        if self.doc_overflow not in ("split", "drop"):
            raise RecipeError(f"doc_overflow: split or drop, got {self.doc_overflow!r}")
        if self.ratio_by not in ("samples", "tokens"):
            raise RecipeError(f"ratio_by: samples or tokens, got {self.ratio_by!r}")
        if self.ratio_by == "tokens" and not (self.ratio and self.total_tokens):
            raise RecipeError("ratio_by: tokens needs a ratio and total_tokens")
        kinds = {k: self.ratio_kind(k) for k in self.ratio}
        if None in kinds.values() or len(set(kinds.values())) > 1:
            raise RecipeError(f"ratio: keys must all be modalities {MODALITIES}, all source "
                              f"names {names}, or all source/modality pairs; got "
                              f"{sorted(self.ratio)}")
        _weights("ratio", self.ratio, lambda k: True)
        if self.ratio and sum(self.ratio.values()) <= 0:
            raise RecipeError("ratio: weights must not all be 0")
        lo, hi = self.deciles
        if not 0 <= lo <= hi <= 9:
            raise RecipeError(f"deciles: need 0 <= lo <= hi <= 9, got {self.deciles}")
        _weights("decile_weights", self.decile_weights,
                 lambda k: isinstance(k, int) and 0 <= k <= 9)
        parse_size(self.shard_size)
        _weights("cluster_weights", self.cluster_weights,
                 lambda k: isinstance(k, str) and ":" in k)
        if not isinstance(self.min_answer_tokens, int) or self.min_answer_tokens < 0:
            raise RecipeError(f"min_answer_tokens: must be an integer >= 0, "
                              f"got {self.min_answer_tokens!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise RecipeError(f"seed: must be an integer >= 0, got {self.seed!r}")
        if self.on_shortfall not in ("fail", "downsample"):
            raise RecipeError(f"on_shortfall: fail or downsample, got {self.on_shortfall!r}")
        if not isinstance(self.replacement, bool):
            raise RecipeError(f"replacement: true or false, got {self.replacement!r}")

    def ratio_kind(self, key: str) -> str | None:
        """``modality``, ``source`` or ``pair`` for a ratio key; None if it is neither."""
        names = {s.name for s in self.sources}
        src, _, mod = str(key).partition("/")
        if not mod:
            return "modality" if key in MODALITIES else "source" if key in names else None
        return "pair" if src in names and mod in MODALITIES else None

    def stratum(self, origin: str, modality: str) -> str:
        """The ratio key a sample from source ``origin`` with ``modality`` falls under."""
        kind = self.ratio_kind(next(iter(self.ratio))) if self.ratio else "modality"
        return {"modality": modality, "source": origin}.get(kind, f"{origin}/{modality}")

    @property
    def shard_limits(self) -> tuple[int | None, int | None]:
        """``(samples, bytes)`` per output shard; one of them is None."""
        return parse_size(self.shard_size)


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
    for name in ("ratio", "cluster_weights", "decile_weights"):
        if name in data and not isinstance(data[name], dict):
            raise RecipeError(f"{name}: expected a mapping, got {data[name]!r}")
    if "source" in data and "sources" in data:
        raise RecipeError("source, sources: give one of them, not both")
    if "sources" in data:
        if not isinstance(data["sources"], list) or not data["sources"]:
            raise RecipeError(f"sources: expected a non-empty list, got {data['sources']!r}")
        data["sources"] = tuple(_source(x) for x in data["sources"])
        data["source"] = None
    return Recipe(**data)


def split_counts(total: int, ratio: dict[str, float]) -> dict[str, int]:
    """Integer counts summing to ``total`` in proportion to ``ratio`` (largest remainder;
    ties broken by key, so the result is deterministic)."""
    s = sum(ratio.values())
    exact = {k: total * v / s for k, v in ratio.items()}
    counts = {k: math.floor(x) for k, x in exact.items()}
    rest = total - sum(counts.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - counts[k]), str(k)))[:rest]:
        counts[k] += 1
    return counts


def feasible_total(recipe: Recipe, available: dict[str, int]) -> int:
    """The largest total whose stratum counts all fit in ``available``."""
    ratio = _ratio(recipe, available)
    if not ratio:
        return 0
    s = sum(ratio.values())
    n = min(math.floor(available.get(k, 0) * s / w + 1e-9) for k, w in ratio.items())
    while n > 0 and any(c > available.get(k, 0) for k, c in split_counts(n, ratio).items()):
        n -= 1
    return n


def _ratio(recipe: Recipe, available: dict[str, int]) -> dict[str, float]:
    return {k: v for k, v in (recipe.ratio or available).items() if v > 0}


def plan_counts(recipe: Recipe, available: dict[str, int], total: int | None = None
                ) -> dict[str, int]:
    """Samples to draw per stratum (ratio key) for ``total`` samples (default: the recipe's
    ``total``, or everything the ratio allows).

    Raises:
        RecipeError: a stratum runs short and ``on_shortfall`` is ``fail``.
    """
    ratio = _ratio(recipe, available)
    keys = sorted(set(available) | set(recipe.ratio))
    if not ratio:
        return {k: 0 for k in keys}
    total = total if total is not None else recipe.total
    feasible = feasible_total(recipe, available)
    counts = split_counts(feasible if total is None else total, ratio)
    short = {k: n - available.get(k, 0) for k, n in counts.items() if n > available.get(k, 0)}
    if short and recipe.on_shortfall == "fail":
        detail = ", ".join(f"{k}: need {counts[k]}, have {available.get(k, 0)} (short by {d})"
                           for k, d in sorted(short.items()))
        names = ", ".join(repr(s.name) for s in recipe.sources)
        raise RecipeError(f"recipe {recipe.name!r}: not enough samples in source(s) {names}: "
                          f"{detail}")
    if short:
        counts = split_counts(feasible, ratio)
    return {k: counts.get(k, 0) for k in keys}
