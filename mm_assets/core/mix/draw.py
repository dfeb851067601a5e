"""Drawing a mixture: candidates, per-stratum/cluster/decile allocation, token estimates.

Within a stratum (see :mod:`.mixing`) the count for cluster c is proportional to
``w_c × |c|`` (``cluster_weights``, default 1; largest remainder, so it is exact), and within a
cluster the count for decile d to ``w_d × |d|`` (``decile_weights``, default 1). A weight of 0
excludes the samples. Each (stratum, cluster, decile) cell draws from its own generator seeded
by the recipe seed and the cell's name, without replacement while the cell suffices (the draw
of n samples is a prefix of the draw of n + 1); with ``replacement: true``, or when a weight
asks for more than the cell holds, with replacement, and repeats get keys ``{key}-r{n}`` — the
manifest states it. With ``total_tokens`` the sample total is the smallest whose draw reaches
the token target (binary search); with ``ratio_by: tokens`` each stratum is the smallest draw
that reaches its token share (:mod:`.token_ratio`). The final order is one seeded
permutation across sources.

Image tokens follow the recipe's ``token_scheme``, a real processor's rule from
:mod:`mm_assets.core.interleaved.tokens` (``fixed`` 729 per image, LLaVA-OneVision
``anyres_max_9``, SigLIP2 ``naflex_{N}``); each candidate keeps its image sizes so the
manifest also reports the totals under :data:`REPORT_SCHEMES`. The retired ``native`` scheme
(14-px patches with a cap) fails with a message naming its replacement.
"""

from __future__ import annotations

import functools
import io
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import xxhash
from PIL import Image

from mm_assets.core.interleaved.tokens import sample_image_tokens
from mm_assets.core.mix.recipe import (
    MODALITIES,
    Recipe,
    RecipeError,
    feasible_total,
    plan_counts,
    split_counts,
)
from mm_assets.core.mix.token_ratio import counts_for_token_shares
from mm_assets.core.quality.lm import DEFAULT_LM, resolve_lm_path
from mm_assets.core.records import Sample

#: schemes whose image-token totals every mixture manifest reports (besides the recipe's)
REPORT_SCHEMES = ("fixed", "anyres_max_9", "naflex_256", "naflex_1024")


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height from the image header (no full decode); (0, 0) if unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:  # noqa: BLE001 - a size estimate, never fatal
        return 0, 0


@dataclass(slots=True)
class Candidate:
    """One sample eligible for the mixture (no image bytes kept).

    Attributes:
        key: unique candidate id and base output key (the source key, prefixed with the
            source name when a recipe has several sources).
        source: the sample's own ``source`` (input file or shard it was ingested from).
        modality: ``text``, ``multimodal`` or ``interleaved`` (a document or document part,
            :mod:`mm_assets.core.interleaved.budget`).
        cluster: ``image:3`` / ``text:0`` (``none`` when unclustered, e.g. external data).
        decile: perplexity decile 0..9, -1 when not scored.
        image_tokens: image tokens of all its images under the recipe's ``token_scheme``.
        text_tokens: tokens of all turns or text segments (SmolLM2 tokenizer by default).
        origin: the recipe source it came from (``curated``, ``web``, ...).
        source_key: the key in that source (defaults to ``key``).
        image_sizes: ``(width, height)`` px of each image, in order (for other schemes).
    """

    key: str
    source: str
    modality: str
    cluster: str
    decile: int
    image_tokens: int
    text_tokens: int
    origin: str = ""
    source_key: str = ""
    image_sizes: tuple[tuple[int, int], ...] = ()

    @property
    def n_images(self) -> int:
        """Number of images (0 for text-only samples)."""
        return len(self.image_sizes)

    def tokens(self) -> int:
        """Text tokens + image tokens under the recipe's scheme."""
        return self.text_tokens + self.image_tokens


def candidate(s: Sample, cluster: str, count_tokens, origin: str = "", key: str | None = None,
              scheme: str = "fixed") -> Candidate:
    """Describe a sample: modality, cluster id (``image:3``/``text:0``), decile, tokens
    (image tokens under ``scheme``, :func:`~mm_assets.core.interleaved.tokens.sample_image_tokens`).

    Raises:
        ValueError: an image header cannot be read (no size: its tokens are unknown).
    """
    sizes = tuple(image_size(data) for data in s.images)
    if any(not (w and h) for w, h in sizes):
        raise ValueError(f"{s.key}: an image header cannot be read (no size for its tokens)")
    return Candidate(key or s.key, s.source, "multimodal" if s.images else "text", cluster,
                     int(s.metadata.get("ppl_decile", -1)), sample_image_tokens(sizes, scheme),
                     count_tokens(s.text()), origin, s.key, sizes)


@dataclass(slots=True)
class Draw:
    """The drawn mixture: output order of ``(output_key, candidate_key)`` and what was stated.

    ``per_modality`` lists ``interleaved`` only when documents were drawn. ``per_stratum`` is
    keyed by the recipe's ratio keys; ``tokens`` is the realised total under
    the recipe's token scheme; ``target_tokens`` is the recipe's ``total_tokens`` (or None).
    """

    order: list[tuple[str, str]]
    per_modality: dict[str, int]
    per_cluster: dict[str, int] = field(default_factory=dict)
    with_replacement: bool = False
    per_stratum: dict[str, int] = field(default_factory=dict)
    tokens: int = 0
    target_tokens: int | None = None


def _rng(seed: int, *parts: str) -> np.random.Generator:
    """A generator per (seed, cell): a cell's draw does not depend on other cells."""
    return np.random.default_rng([seed, xxhash.xxh64("\x1f".join(parts).encode()).intdigest()])


class _Plan:
    """Candidates grouped by stratum, then cluster, then decile, with their weights."""

    def __init__(self, cands: list[Candidate], recipe: Recipe):
        self.recipe = recipe
        cw, dw = recipe.cluster_weights, recipe.decile_weights
        self.cells: dict[str, dict[str, dict[int, list[Candidate]]]] = {}
        for c in sorted(cands, key=lambda c: c.key):
            if cw.get(c.cluster, 1.0) > 0 and dw.get(c.decile, 1.0) > 0:
                st = recipe.stratum(c.origin, c.modality)
                self.cells.setdefault(st, {}).setdefault(c.cluster, {}).setdefault(
                    c.decile, []).append(c)
        self.available = {st: sum(len(p) for d in cl.values() for p in d.values())
                          for st, cl in self.cells.items()}
        self._perm: dict[tuple, np.ndarray] = {}

    def pick(self, counts: dict[str, int]) -> tuple[list[Candidate], dict[str, int], bool]:
        """Candidates for ``counts`` per stratum: clusters get ``w_c × |c|`` shares (exact,
        largest remainder), deciles within a cluster ``w_d × |d|``; repeats when drawing with
        replacement. Returns the picks, the count per cluster and whether any cell repeated."""
        r, out, per_cluster, repl_any = self.recipe, [], Counter(), False
        for st in sorted(self.cells):
            clusters = self.cells[st]
            sizes = {cl: sum(len(p) for p in d.values()) for cl, d in clusters.items()}
            alloc = split_counts(counts.get(st, 0), {
                cl: r.cluster_weights.get(cl, 1.0) * n for cl, n in sizes.items()})
            for cl in sorted(clusters):
                per_cluster[cl] += alloc[cl]
                by_dec = clusters[cl]
                dec_alloc = split_counts(alloc[cl], {
                    d: r.decile_weights.get(d, 1.0) * len(p) for d, p in by_dec.items()})
                for d in sorted(by_dec):
                    pool, n = by_dec[d], dec_alloc[d]
                    if not n:
                        continue
                    repl = r.replacement or n > len(pool)
                    repl_any |= repl
                    if repl:
                        idx = _rng(r.seed, "repl", st, cl, str(d)).integers(0, len(pool), n)
                    else:
                        cell = (st, cl, d)
                        if cell not in self._perm:
                            self._perm[cell] = _rng(r.seed, st, cl, str(d)).permutation(
                                len(pool))
                        idx = self._perm[cell][:n]
                    out.extend(pool[i] for i in idx)
        return out, dict(per_cluster), repl_any

    def tokens(self, total: int) -> int:
        picks, _, _ = self.pick(plan_counts(self.recipe, self.available, total))
        return sum(c.tokens() for c in picks)


def _total_for_tokens(plan: _Plan, recipe: Recipe) -> int:
    """Smallest sample total whose draw reaches ``total_tokens`` (binary search; the draw of
    n is a prefix of the draw of n + 1 within each cell, so tokens grow with n).

    Raises:
        RecipeError: even every feasible sample gives fewer tokens and the recipe says fail.
    """
    target, hi = recipe.total_tokens, feasible_total(recipe, plan.available)
    most = plan.tokens(hi) if hi else 0
    if most < target:
        if recipe.on_shortfall == "fail":
            raise RecipeError(f"recipe {recipe.name!r}: total_tokens: need {target:,} tokens "
                              f"({recipe.token_scheme} image tokens), the sources give at most "
                              f"{most:,} in {hi} samples (short by {target - most:,})")
        return hi
    lo = 1
    while lo < hi:
        mid = (lo + hi) // 2
        if plan.tokens(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def draw(cands: list[Candidate], recipe: Recipe) -> Draw:
    """Sample per the recipe (module doc of :mod:`.mixing` and this one); deterministic for a
    recipe and candidate set, whatever the candidates' order.

    Raises:
        RecipeError: a stratum (or the token total) runs short and the recipe says ``fail``;
            the draw is empty, whatever ``on_shortfall`` says.
    """
    plan = _Plan(cands, recipe)
    if not any(plan.available.values()):
        raise RecipeError(f"recipe {recipe.name!r} selects no samples: {len(cands)} eligible "
                          f"after filters, none with a weight > 0 (decile_weights, "
                          f"cluster_weights)" if cands else
                          f"recipe {recipe.name!r} selects no samples: no source sample is "
                          f"eligible (empty source, deciles range or min_answer_tokens)")
    if recipe.ratio_by == "tokens":  # strata sized by token shares (.token_ratio)
        per_stratum = counts_for_token_shares(plan, recipe)
    else:
        total = _total_for_tokens(plan, recipe) if recipe.total_tokens else None
        per_stratum = plan_counts(recipe, plan.available, total)
    picks, per_cluster, replaced = plan.pick(per_stratum)
    if not picks:
        raise RecipeError(f"recipe {recipe.name!r} selects no samples: the draw is empty "
                          f"(per stratum {per_stratum}, available {dict(plan.available)}; "
                          f"on_shortfall: {recipe.on_shortfall} cannot make an empty mixture)")
    seen: Counter = Counter()
    chosen = []
    for c in picks:
        seen[c.key] += 1
        chosen.append((c.key if seen[c.key] == 1 else f"{c.key}-r{seen[c.key] - 1}", c.key))
    rng = np.random.default_rng(recipe.seed)
    order = [chosen[i] for i in rng.permutation(len(chosen))]
    per_mod = Counter(c.modality for c in picks)
    mods = {m: per_mod.get(m, 0) for m in MODALITIES if m != "interleaved" or per_mod.get(m)}
    return Draw(order, mods, per_cluster, replaced,
                per_stratum, sum(c.tokens() for c in picks),
                recipe.total_tokens)


def summarise(cands: dict[str, Candidate], d: Draw, scheme: str = "fixed") -> dict:
    """Counts and token totals per origin, source, modality, decile and cluster; ``tokens``:
    text, image under the recipe's ``scheme`` and ``image_{s}`` under each of
    :data:`REPORT_SCHEMES`; ``images_per_unit`` per modality (units, images, mean, max)."""
    rows = [cands[src] for _, src in d.order]
    out: dict = {"samples": len(rows)}
    for field_ in ("origin", "source", "modality", "decile", "cluster"):
        out[f"by_{field_}"] = {str(k): v for k, v in sorted(Counter(
            str(getattr(c, field_)) for c in rows).items())}
    out["tokens"] = {"scheme": scheme, "text": sum(c.text_tokens for c in rows),
                     "image": sum(c.image_tokens for c in rows)}
    for s in dict.fromkeys((scheme, *REPORT_SCHEMES)):
        out["tokens"][f"image_{s}"] = sum(sample_image_tokens(c.image_sizes, s) for c in rows)
    for field_ in ("origin", "modality"):
        out[f"tokens_by_{field_}"] = {k: sum(c.tokens() for c in rows
                                             if getattr(c, field_) == k)
                                      for k in out[f"by_{field_}"]}
    out["images_per_unit"] = {m: {"units": len(g), "images": sum(g), "mean": sum(g) / len(g),
                                  "max": max(g)} for m, g in sorted(_group(
                                      (c.modality, c.n_images) for c in rows).items())}
    return out


def _group(pairs) -> dict:
    out: dict = {}
    for k, v in pairs:
        out.setdefault(k, []).append(v)
    return out


@functools.lru_cache(maxsize=2)
def token_counter(name: str = DEFAULT_LM):
    """``text -> number of tokens`` with the tokenizer of ``name`` (default SmolLM2's)."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(resolve_lm_path(name))
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


def source_digest(samples_digest: xxhash.xxh3_128, s: Sample) -> None:
    """Fold one source sample (key, text, image bytes) into the source's content digest."""
    samples_digest.update(s.key.encode())
    samples_digest.update(s.text().encode())
    for data in s.images:
        samples_digest.update(data)
