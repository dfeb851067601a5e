"""Building a mixture: candidates, per-cluster allocation, token estimates, the manifest.

Allocation within a modality: with ``cluster_weights`` the count for cluster c is proportional
to ``w_c × |c|`` (largest remainder, so it is exact); default weight 1. Within a cluster,
samples are drawn without replacement while the pool suffices; with ``replacement: true`` (or
when a weight asks for more than the cluster holds) they are drawn with replacement and repeats
get keys ``{key}-r{n}`` — the manifest states it.

Image-token estimates per image: ``fixed`` tiling = 729 tokens (27×27 patches of a 384-px
SigLIP-so400m/14 tile) per image; ``native`` = ``ceil(w/14) × ceil(h/14)`` patches at the
image's own size, capped at ``native_cap`` (16,384).
"""

from __future__ import annotations

import functools
import io
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import xxhash
from PIL import Image

from .lm import DEFAULT_LM, resolve_lm_path
from .mixing import MODALITIES, Recipe, plan_counts, split_counts
from .records import Sample

FIXED_TOKENS_PER_IMAGE = 729
PATCH = 14
NATIVE_CAP = 16_384


def image_tokens(width: int, height: int) -> tuple[int, int]:
    """``(fixed, native)`` token estimates for one image of ``width × height`` pixels."""
    native = math.ceil(width / PATCH) * math.ceil(height / PATCH)
    return FIXED_TOKENS_PER_IMAGE, min(native, NATIVE_CAP)


def image_size(data: bytes) -> tuple[int, int]:
    """Width and height from the image header (no full decode); (0, 0) if unreadable."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            return im.size
    except Exception:  # noqa: BLE001 - a size estimate, never fatal
        return 0, 0


@dataclass(slots=True)
class Candidate:
    """One sample eligible for the mixture (no image bytes kept)."""

    key: str
    source: str
    modality: str
    cluster: str
    decile: int
    tokens_fixed: int
    tokens_native: int
    text_tokens: int


def candidate(s: Sample, cluster: str, count_tokens) -> Candidate:
    """Describe a sample: modality, cluster id (``image:3``/``text:0``), decile, tokens."""
    fixed = native = 0
    for data in s.images:
        f, n = image_tokens(*image_size(data))
        fixed, native = fixed + f, native + n
    return Candidate(s.key, s.source, "multimodal" if s.images else "text", cluster,
                     int(s.metadata.get("ppl_decile", -1)), fixed, native,
                     count_tokens(s.text()))


@dataclass(slots=True)
class Draw:
    """The drawn mixture: output order of ``(output_key, source_key)`` and what was stated."""

    order: list[tuple[str, str]]
    per_modality: dict[str, int]
    per_cluster: dict[str, int] = field(default_factory=dict)
    with_replacement: bool = False


def draw(cands: list[Candidate], recipe: Recipe) -> Draw:
    """Sample per the recipe (see module doc); deterministic for a recipe and candidate set.

    Raises:
        RecipeError: a modality runs short and the recipe says ``fail``.
    """
    rng = np.random.default_rng(recipe.seed)
    pools = {m: sorted((c for c in cands if c.modality == m), key=lambda c: c.key)
             for m in MODALITIES}
    per_mod = plan_counts(recipe, {m: len(p) for m, p in pools.items()})
    chosen: list[tuple[str, str]] = []
    per_cluster: Counter = Counter()
    replaced = False
    for m in MODALITIES:
        by_cluster: dict[str, list[Candidate]] = {}
        for c in pools[m]:
            by_cluster.setdefault(c.cluster, []).append(c)
        weights = {c: recipe.cluster_weights.get(c, 1.0) * len(v) for c, v in by_cluster.items()}
        alloc = split_counts(per_mod[m], weights) if sum(weights.values()) > 0 else {}
        for cl in sorted(by_cluster):
            pool, n = by_cluster[cl], alloc.get(cl, 0)
            repl = recipe.replacement or n > len(pool)
            idx = rng.choice(len(pool), size=n, replace=repl) if n else []
            replaced |= bool(repl and n)
            seen: Counter = Counter()
            for i in sorted(idx):
                k = pool[i].key
                seen[k] += 1
                chosen.append((k if seen[k] == 1 else f"{k}-r{seen[k] - 1}", k))
            per_cluster[cl] += n
    order = [chosen[i] for i in rng.permutation(len(chosen))]
    return Draw(order, per_mod, dict(per_cluster), replaced)


def summarise(cands: dict[str, Candidate], d: Draw) -> dict:
    """Counts and token totals per source, modality, decile and cluster for the manifest."""
    rows = [cands[src] for _, src in d.order]
    out: dict = {"samples": len(rows)}
    for field_ in ("source", "modality", "decile", "cluster"):
        out[f"by_{field_}"] = {str(k): v for k, v in sorted(Counter(
            str(getattr(c, field_)) for c in rows).items())}
    out["tokens"] = {"text": sum(c.text_tokens for c in rows),
                     "image_fixed_729": sum(c.tokens_fixed for c in rows),
                     "image_native_p14": sum(c.tokens_native for c in rows)}
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
