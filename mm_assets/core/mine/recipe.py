"""Mining recipes (YAML): which corpus clusters to fill from which pools, and how.

```yaml
name: diversity_v1          # = file name; one `mining` partition per recipe
pools: [datacomp_small]     # registered pools (`mm-assets pool add NAME PREFIX`)
clusters: all               # or a list of corpus image-cluster ids to consider
# exactly one of the four ways to say how many images per cluster:
fill_to: median             # bring every cluster up to the median (or an integer) size
# counts: {0: 200, 3: 50}   # absolute counts per cluster
# weights: {0: 2, 3: 1}     # `total` split by weight (largest remainder)
# distribution: {0: 0.5, 3: 0.5}   # target shares (sum 1) of corpus + mined; `total` mined
total: null                 # required with weights / distribution
min_sim: 0.3                # cosine to the assigned centroid, at least
min_margin: 0.0             # sim - sim2 (nearest minus second-nearest centroid), at least
caption: {min_chars: 5, max_chars: 1000, languages: [en]}   # all optional
dedup:                      # of mined images against the corpus and among themselves
  exact: true               # bytes hash and decoded-pixel hash
  phash_radius: 6           # pHash Hamming radius in bits (null: off); the mirror pHash too
  cosine: 0.92              # embedding cosine at or above which an image is a duplicate (null: off)
  cosine_clusters: 4        # ... compared within the candidate's 4 nearest corpus clusters
seed: 0                     # seeded selection: same recipe + same pool tables -> same images
shard_size: 1000            # samples per output shard
prompt: Describe the image. # the human turn of each mined sample ("<image>\\n" + prompt)
```

Shipped examples live in ``mm_assets/mining/``; a root's own recipes in
``{root}/mining/{name}.yaml`` (a root recipe of the same name wins), as mixture recipes and
synthetic specs. Targets per cluster come from :func:`targets` and the corpus cluster sizes
(``clusters/assignments.parquet``, space ``image``).
"""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass, field, fields
from typing import Any

import yaml

from mm_assets.core import layout
from mm_assets.core.mix.recipe import split_counts
from mm_assets.core.yaml_registry import YamlRegistry

_NAME = re.compile(r"^[A-Za-z0-9_]+$")
MODES = ("counts", "fill_to", "weights", "distribution")
SHARE_TOLERANCE = 1e-6  # |sum of distribution shares - 1| allowed


class MiningRecipeError(ValueError):
    """A mining recipe that cannot be used; the message names the field."""


@dataclass(frozen=True, slots=True)
class CaptionFilter:
    """Caption filters: length in characters (inclusive bounds) and languages (ISO 639-1
    codes as CLD2 reports them; a caption CLD2 cannot identify reliably passes)."""

    min_chars: int = 0
    max_chars: int | None = None
    languages: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.min_chars, int) or isinstance(self.min_chars, bool) \
                or self.min_chars < 0:
            raise MiningRecipeError(f"caption.min_chars: an integer >= 0, got {self.min_chars!r}")
        if self.max_chars is not None and (not isinstance(self.max_chars, int)
                                           or self.max_chars < max(self.min_chars, 1)):
            raise MiningRecipeError(f"caption.max_chars: an integer >= min_chars, "
                                    f"got {self.max_chars!r}")
        if not all(isinstance(x, str) and re.fullmatch(r"[a-z]{2,3}", x) for x in self.languages):
            raise MiningRecipeError(f"caption.languages: ISO codes like [en, de], "
                                    f"got {list(self.languages)!r}")


@dataclass(frozen=True, slots=True)
class DedupSpec:
    """Dedup of mined images against the corpus and among themselves.

    Attributes:
        exact: drop an image whose bytes hash or decoded-pixel hash (xxh3-128) matches.
        phash_radius: pHash Hamming radius in bits (0..63; the mirror pHash is compared too);
            None turns it off.
        cosine: cosine of the L2-normalised embeddings at or above which an image is a
            semantic duplicate; None turns it off.
        cosine_clusters: a candidate is compared with the corpus images (and the other mined
            images) of its this many nearest corpus centroids (>= 1; at least K: every image).
            Measured on a 20k pool with EfficientNet-Lite0 (K = 12, cosine 0.9): 2 nearest
            missed 30 of 15,171 pool images with a corpus duplicate (and let 1-2 % of the mined
            images through), 3 missed 2, 4 and more none (bench/README.md).
    """

    exact: bool = True
    phash_radius: int | None = 6
    cosine: float | None = 0.92
    cosine_clusters: int = 4

    def __post_init__(self) -> None:
        if not isinstance(self.exact, bool):
            raise MiningRecipeError(f"dedup.exact: true or false, got {self.exact!r}")
        r = self.phash_radius
        if r is not None and (not isinstance(r, int) or isinstance(r, bool) or not 0 <= r < 64):
            raise MiningRecipeError(f"dedup.phash_radius: an integer in [0, 64) or null, got {r!r}")
        c = self.cosine
        if c is not None and (isinstance(c, bool) or not isinstance(c, (int, float))
                              or not -1.0 < c <= 1.0):
            raise MiningRecipeError(f"dedup.cosine: a number in (-1, 1] or null, got {c!r}")
        m = self.cosine_clusters
        if not isinstance(m, int) or isinstance(m, bool) or m < 1:
            raise MiningRecipeError(f"dedup.cosine_clusters: an integer >= 1, got {m!r}")


@dataclass(frozen=True, slots=True)
class MiningRecipe:
    """A validated mining recipe (see the module doc for every field)."""

    name: str
    pools: tuple[str, ...]
    clusters: tuple[int, ...] | None = None
    counts: dict[int, int] | None = None
    fill_to: str | int | None = None
    weights: dict[int, float] | None = None
    distribution: dict[int, float] | None = None
    total: int | None = None
    min_sim: float = 0.0
    min_margin: float = 0.0
    caption: CaptionFilter = field(default_factory=CaptionFilter)
    dedup: DedupSpec = field(default_factory=DedupSpec)
    seed: int = 0
    shard_size: int = 1000
    prompt: str = "Describe the image."
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise MiningRecipeError(f"name: non-empty [A-Za-z0-9_], got {self.name!r}")
        if not self.pools or not all(isinstance(p, str) and _NAME.match(p) for p in self.pools):
            raise MiningRecipeError(f"pools: a non-empty list of pool names, got {self.pools!r}")
        if self.clusters is not None and not all(_is_id(c) for c in self.clusters):
            raise MiningRecipeError(f"clusters: 'all' or a list of cluster ids >= 0, "
                                    f"got {self.clusters!r}")
        given = [m for m in MODES if getattr(self, m) is not None]
        if len(given) != 1:
            raise MiningRecipeError(f"{', '.join(MODES)}: give exactly one, got {given or 'none'}")
        mode = given[0]
        if mode == "fill_to" and self.fill_to != "median" and not (
                isinstance(self.fill_to, int) and not isinstance(self.fill_to, bool)
                and self.fill_to > 0):
            raise MiningRecipeError(f"fill_to: 'median' or a positive integer, "
                                    f"got {self.fill_to!r}")
        if mode != "fill_to":
            table = getattr(self, mode)
            if not isinstance(table, dict) or not table:
                raise MiningRecipeError(f"{mode}: a non-empty mapping cluster -> number")
            for k, v in table.items():
                ok = (not isinstance(v, bool) and isinstance(v, int) and v >= 0) \
                    if mode == "counts" else \
                    (not isinstance(v, bool) and isinstance(v, (int, float)) and v >= 0)
                if not _is_id(k) or not ok:
                    raise MiningRecipeError(f"{mode}: bad entry {k!r}: {v!r}")
            if mode != "counts" and sum(table.values()) <= 0:
                raise MiningRecipeError(f"{mode}: values must not all be 0")
            if mode == "distribution" and abs(sum(table.values()) - 1.0) > SHARE_TOLERANCE:
                raise MiningRecipeError(
                    f"distribution: target shares must sum to 1 (±{SHARE_TOLERANCE:g}), got "
                    f"{sum(table.values()):.6g}; for relative sizes use weights + total")
        needs_total = mode in ("weights", "distribution")
        if needs_total != (self.total is not None):
            raise MiningRecipeError(f"total: {'required' if needs_total else 'not used'} "
                                    f"with {mode}")
        if self.total is not None and (not isinstance(self.total, int) or self.total <= 0):
            raise MiningRecipeError(f"total: a positive integer, got {self.total!r}")
        for f, lo in (("min_sim", -1.0), ("min_margin", 0.0)):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= 1.0:
                raise MiningRecipeError(f"{f}: a number in [{lo}, 1], got {v!r}")
        for f, lo in (("seed", 0), ("shard_size", 1)):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise MiningRecipeError(f"{f}: an integer >= {lo}, got {v!r}")
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise MiningRecipeError(f"prompt: a non-empty string, got {self.prompt!r}")

    @property
    def mode(self) -> str:
        """Which of :data:`MODES` the recipe uses."""
        return next(m for m in MODES if getattr(self, m) is not None)


def _is_id(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def targets(recipe: MiningRecipe, sizes: dict[int, int]) -> dict[int, int]:
    """Images to mine per cluster.

    Args:
        recipe: the recipe.
        sizes: corpus images per cluster id (every cluster, empty ones with 0).

    Returns:
        ``{cluster: wanted}`` for every considered cluster (0 where nothing is wanted):
        ``counts`` as given; ``fill_to`` = max(0, level - size) with level the median of
        ``sizes`` (``statistics.median``, rounded up) or the integer given; ``weights`` =
        ``total`` split by weight (largest remainder); ``distribution``: the shortfall of each
        cluster against its share of corpus + ``total`` (deficit ``max(0, p*(N+total)-n)``),
        ``total`` split in proportion to the deficits.

    Raises:
        MiningRecipeError: the recipe names a cluster the corpus does not have.
    """
    considered = sorted(sizes) if recipe.clusters is None else list(recipe.clusters)
    table = getattr(recipe, recipe.mode) if recipe.mode != "fill_to" else {}
    named = set(considered) | set(table)
    unknown = sorted(set(named) - set(sizes))
    if unknown:
        raise MiningRecipeError(f"{'clusters' if recipe.clusters else recipe.mode}: unknown "
                                f"cluster id(s) {unknown[:10]}; the corpus has {len(sizes)} "
                                f"image clusters")
    keep = set(considered)
    if recipe.mode == "counts":
        return {c: recipe.counts.get(c, 0) for c in considered}
    if recipe.mode == "fill_to":
        level = recipe.fill_to
        if level == "median":
            level = int(-(-statistics.median(sizes.values()) // 1)) if sizes else 0
        return {c: max(0, level - sizes[c]) for c in considered}
    if recipe.mode == "weights":
        w = {c: float(v) for c, v in recipe.weights.items() if c in keep and v > 0}
        got = split_counts(recipe.total, w) if w else {}
        return {c: got.get(c, 0) for c in considered}
    p = {c: float(v) for c, v in recipe.distribution.items() if c in keep}
    s = sum(p.values()) or 1.0
    grand = sum(sizes.values()) + recipe.total
    deficit = {c: max(0.0, p[c] / s * grand - sizes[c]) for c in p}
    got = split_counts(recipe.total, {c: d for c, d in deficit.items() if d > 0}) \
        if any(deficit.values()) else {}
    return {c: got.get(c, 0) for c in considered}


def parse_mining_recipe(text: str) -> MiningRecipe:
    """Mining recipe from YAML text.

    Raises:
        MiningRecipeError: not YAML or not a mapping, unknown field, wrong type or value (the
            message names the field).
    """
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise MiningRecipeError(f"not valid YAML: {' '.join(str(e).split())}") from e
    if not isinstance(data, dict):
        raise MiningRecipeError("a mining recipe must be a YAML mapping")
    known = {f.name for f in fields(MiningRecipe)}
    if set(data) - known:
        raise MiningRecipeError(f"unknown field(s) {sorted(set(data) - known)}; known: "
                                f"{sorted(known)}")
    if "name" not in data or "pools" not in data:
        raise MiningRecipeError("name and pools are required")
    pools = data["pools"]
    data["pools"] = tuple(pools) if isinstance(pools, list) else (pools,) \
        if isinstance(pools, str) else ()
    cl = data.get("clusters", "all")
    if cl != "all" and not isinstance(cl, list):
        raise MiningRecipeError(f"clusters: 'all' or a list of cluster ids, got {cl!r}")
    data["clusters"] = None if cl == "all" else tuple(cl)
    for sub, cls in (("caption", CaptionFilter), ("dedup", DedupSpec)):
        raw = data.get(sub, {}) or {}
        allowed = {f.name for f in fields(cls)}
        if not isinstance(raw, dict) or set(raw) - allowed:
            raise MiningRecipeError(f"{sub}: a mapping with keys {sorted(allowed)}, got {raw!r}")
        if sub == "caption" and "languages" in raw:
            langs = raw["languages"]
            raw = {**raw, "languages": tuple(langs) if isinstance(langs, list) else (langs,)}
        data[sub] = cls(**raw)
    return MiningRecipe(**data)


REGISTRY: YamlRegistry[MiningRecipe] = YamlRegistry(
    "mining recipe", "recipe", "mining", layout.MINING, layout.mining_recipe, parse_mining_recipe,
    MiningRecipeError)
shipped = REGISTRY.shipped


def root_mining_recipes(store) -> list[str]:
    """Names of the root's own mining recipes (``{root}/mining/*.yaml``), sorted."""
    return REGISTRY.root_names(store)


def all_mining_recipes(store) -> dict[str, str]:
    """Recipe name -> YAML text, shipped and the root's own together (root wins)."""
    return REGISTRY.texts(store)


def load_mining_recipe(store, name: str) -> MiningRecipe:
    """The mining recipe called ``name``.

    Raises:
        MiningRecipeError: unknown name, invalid recipe (prefixed with the file name), or the
            file name and the recipe's ``name`` disagree.
    """
    return REGISTRY.load(store, name)
