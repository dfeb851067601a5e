"""Image tokens per real processor: named schemes, one function, a small registry.

How many positions an image takes in a vision-language model's input sequence, for an image
of ``width × height`` pixels (the decoded size, before any processor resize). Each scheme is a
port of the reference processor's own arithmetic, so counts match what the model sees:

``fixed`` (729)
    SigLIP so400m-patch14-384 (``google/siglip-so400m-patch14-384``): the image is resized to
    384 × 384 and cut into 14-px patches, ``384 // 14 = 27`` per side, ``27 × 27 = 729``
    tokens whatever the input size (the LLaVA-1.5-style single-tile baseline).

``anyres_max_9`` (LLaVA-OneVision)
    Port of transformers ``models/llava_onevision/processing_llava_onevision.py``
    ``LlavaOnevisionProcessor._get_number_of_features`` / ``_get_unpadded_features`` (itself
    the token count of ``modeling_llava_onevision.py`` ``pack_image_features`` +
    ``unpad_image``, and of LLaVA-NeXT ``llava/model/llava_arch.py``
    ``prepare_inputs_labels_for_multimodal`` with ``image_aspect_ratio: anyres_max_9``,
    ``mm_patch_merge_type: spatial_unpad``). Single image:

    1. ``select_best_resolution`` (transformers ``image_processing_utils.py``) over the 36
       OneVision grid pinpoints ``(h, w) ∈ {384, 768, …, 2304}²`` (1×1 … 6×6 tiles of 384 px):
       the pinpoint maximising the effective resolution ``min(int(w·s)·int(h·s), w·h)`` with
       ``s = min(W/w, H/h)``, ties to the least wasted ``W·H − effective``; first wins.
    2. The tile grid ``(H/384) × (W/384)`` gives a feature map of ``27·H/384 × 27·W/384``.
    3. Unpad: the padding the aspect-preserving resize left is cut from the feature map
       (``new = int(round(orig_short · current_long / orig_long, 7))``,
       ``padding = (current − new) // 2`` on both sides).
    4. Max-tile downscale (anyres_max_9): ``ratio = sqrt(h·w / (9 · 27²))``; if
       ``ratio > 1.1`` the map is interpolated to ``int(h // ratio) × int(w // ratio)``.
    5. One ``image_newline`` token per row of the (unpadded, downscaled) map.
    6. Plus the base image: one 384-px tile, 729 tokens, no newline.

    Tokens = ``729 + h·w + h``. When a sample holds more than one image (multi-image and
    interleaved data) the processor does not tile: each image is its base tile plus one
    newline, 730 tokens (``replace_image_token``'s ``is_multi_image`` branch; LLaVA-NeXT
    trains multi-image data with ``image_aspect_ratio: pad``). ``multi_image=True`` selects
    that rule; :func:`sample_image_tokens` applies it when a sample has ≥ 2 images.
    ``vision_feature_select_strategy`` is ``full`` for OneVision (no CLS token dropped).

``naflex_{N}`` (SigLIP2 NaFlex, ``google/siglip2-so400m-patch16-naflex``)
    Exact port of transformers ``models/siglip2/image_processing_siglip2.py``
    ``get_image_size_for_max_num_patches``: patch 16, a binary search over the scale
    ``s ∈ [1e-6, 100]`` (stop when the interval is below ``eps = 1e-5``) for the largest
    ``s`` with ``ceil(h·s/16) · ceil(w·s/16) ≤ N`` (each side at least one patch); the image is
    resized to that size, aspect ratio preserved up to rounding to whole patches. Tokens =
    the number of valid patches (the processor pads the patch sequence to ``N`` with an
    attention mask; padded positions are not counted). Tiny images are upscaled (a 1 × 1
    image becomes 112 × 112 px = 49 patches: ``ceil(100 · (1 − ~1e-7) / 16) = 7``).
    Registered: ``naflex_256`` (the processor default), ``naflex_576``, ``naflex_1024``,
    ``naflex_4096``; any ``naflex_{N}`` name parses.

Cost: O(36) arithmetic for AnyRes, ~24 bisection steps for NaFlex (a few µs); results are
cached per ``(width, height, scheme, params)``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable

FIXED_TOKENS = 729
SIGLIP_TILE = 384
SIGLIP_SIDE = SIGLIP_TILE // 14  # 27 patches per side
ONEVISION_PINPOINTS = tuple((h * SIGLIP_TILE, w * SIGLIP_TILE)
                            for h in range(1, 7) for w in range(1, 7))
NAFLEX_PATCH = 16

SCHEMES: dict[str, str] = {
    "fixed": "729 per image: SigLIP so400m-patch14-384, 27x27 patches of one 384-px tile",
    "anyres_max_9": "LLaVA-OneVision anyres_max_9: 729 base + unpadded tile map (<= 9 tiles "
                    "after downscale) + one newline per row; 730 per image in multi-image "
                    "samples (transformers LlavaOnevisionProcessor._get_number_of_features)",
    "naflex_256": "SigLIP2 NaFlex, patch 16, <= 256 patches (transformers "
                  "siglip2 get_image_size_for_max_num_patches)",
    "naflex_576": "SigLIP2 NaFlex, patch 16, <= 576 patches",
    "naflex_1024": "SigLIP2 NaFlex, patch 16, <= 1024 patches",
    "naflex_4096": "SigLIP2 NaFlex, patch 16, <= 4096 patches",
}
DEPRECATED = {"native": "naflex_1024"}
_ANYRES = re.compile(r"^anyres_max_([1-9][0-9]*)$")
_NAFLEX = re.compile(r"^naflex_([1-9][0-9]*)$")


def check_scheme(name: str) -> str:
    """The canonical name of a token scheme (``fixed``, ``anyres_max_{K}``, ``naflex_{N}``).

    Raises:
        ValueError: unknown name (the message lists the registered ones), or the retired
            ``native`` (14-px patches with a cap: no real processor's rule), which names its
            replacement.
    """
    if name in DEPRECATED:
        raise ValueError(f"token scheme {name!r} is retired (ceil(w/14)*ceil(h/14) capped at "
                         f"16,384 is no real processor's rule): use {DEPRECATED[name]!r} "
                         f"(SigLIP2 NaFlex) or one of {sorted(SCHEMES)}")
    if not isinstance(name, str) or not (name == "fixed" or _ANYRES.match(name)
                                         or _NAFLEX.match(name)):
        raise ValueError(f"unknown token scheme {name!r}; known: {sorted(SCHEMES)} "
                         f"(and any anyres_max_K / naflex_N)")
    return name


def naflex_size(width: int, height: int, max_num_patches: int,
                patch_size: int = NAFLEX_PATCH, eps: float = 1e-5) -> tuple[int, int]:
    """Target ``(width, height)`` in px of SigLIP2 NaFlex's resize (module doc; exact port of
    transformers ``get_image_size_for_max_num_patches``, which takes and returns (h, w))."""
    def scaled(scale: float, size: int) -> int:
        return int(max(patch_size, math.ceil(size * scale / patch_size) * patch_size))

    lo, hi = eps / 10, 100.0
    while hi - lo >= eps:
        mid = (lo + hi) / 2
        if (scaled(mid, height) / patch_size) * (scaled(mid, width) / patch_size) \
                <= max_num_patches:
            lo = mid
        else:
            hi = mid
    return scaled(lo, width), scaled(lo, height)


def select_best_resolution(width: int, height: int,
                           pinpoints: Iterable[tuple[int, int]] = ONEVISION_PINPOINTS
                           ) -> tuple[int, int]:
    """The ``(H, W)`` pinpoint (px) AnyRes resizes to: most effective pixels, then least
    waste, first wins (port of transformers ``image_processing_utils.select_best_resolution``;
    pinpoints are ``(height, width)``)."""
    best, best_eff, best_waste = None, 0, float("inf")
    for ph, pw in pinpoints:
        s = min(pw / width, ph / height)
        eff = min(int(width * s) * int(height * s), width * height)
        waste = pw * ph - eff
        if eff > best_eff or (eff == best_eff and waste < best_waste):
            best, best_eff, best_waste = (ph, pw), eff, waste
    return best


def anyres_tokens(width: int, height: int, max_tiles: int = 9, multi_image: bool = False,
                  side: int = SIGLIP_SIDE, tile: int = SIGLIP_TILE) -> int:
    """LLaVA-OneVision ``anyres_max_{max_tiles}`` tokens for one image (module doc)."""
    base = side * side
    if multi_image:
        return base + 1
    ph, pw = select_best_resolution(width, height)
    cur_h, cur_w = side * (ph // tile), side * (pw // tile)
    if width / height > cur_w / cur_h:
        new_h = int(round(height * (cur_w / width), 7))
        cur_h -= (cur_h - new_h) // 2 * 2
    else:
        new_w = int(round(width * (cur_h / height), 7))
        cur_w -= (cur_w - new_w) // 2 * 2
    feats, rows = cur_h * cur_w, cur_h
    ratio = math.sqrt(cur_h * cur_w / (max_tiles * side ** 2))
    if ratio > 1.1:
        rows = int(cur_h // ratio)
        feats = rows * int(cur_w // ratio)
    return base + feats + rows


@functools.lru_cache(maxsize=65_536)
def _tokens(width: int, height: int, scheme: str, params: tuple) -> int:
    kw = dict(params)
    if scheme == "fixed":
        return int(kw.get("tokens", FIXED_TOKENS))
    m = _ANYRES.match(scheme)
    if m:
        return anyres_tokens(width, height, int(kw.pop("max_tiles", m.group(1))), **kw)
    n = int(kw.pop("max_num_patches", _NAFLEX.match(scheme).group(1)))
    p = int(kw.get("patch_size", NAFLEX_PATCH))
    w, h = naflex_size(width, height, n, **kw)
    return (w // p) * (h // p)


def image_tokens(width: int, height: int, scheme: str = "fixed", **params) -> int:
    """Tokens one ``width × height`` px image takes under ``scheme`` (module doc).

    Args:
        width, height: decoded image size in px, each ≥ 1.
        scheme: a registered or parseable name (:data:`SCHEMES`, ``anyres_max_K``,
            ``naflex_N``).
        **params: overrides: ``tokens`` (fixed), ``multi_image`` (bool, AnyRes: 730 per
            image), ``max_tiles`` (AnyRes), ``max_num_patches`` / ``patch_size`` (NaFlex).

    Returns:
        The number of image positions (int ≥ 1).

    Raises:
        ValueError: unknown or retired scheme; width or height not a positive integer.
    """
    check_scheme(scheme)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
               for v in (width, height)):
        raise ValueError(f"image size must be positive integers, got {width!r} x {height!r}")
    return _tokens(width, height, scheme, tuple(sorted(params.items())))


def min_image_tokens(scheme: str) -> int:
    """A lower bound, reached by some image, of the tokens any one image takes under
    ``scheme`` (default parameters): ``fixed`` 729; ``anyres_max_K`` 730 (the multi-image
    rule; alone an image takes 729 + its tile map + rows > 730); ``naflex_N``
    ``min(49, N // 4 + 1)``: an image that fits at the search's largest scale (100) is at
    least 7 × 7 patches (1 × 1 px reaches it), else the search stops at ``a · b ≤ N`` patches
    with ``(a+1)(b+1) > N`` at the next step, and ``(a+1)(b+1) ≤ 4ab``, so ``a · b > N / 4``.
    A ``max_doc_tokens`` below it fits no image at all.

    Raises:
        ValueError: unknown or retired scheme.
    """
    check_scheme(scheme)
    if scheme == "fixed":
        return FIXED_TOKENS
    if _ANYRES.match(scheme):
        return SIGLIP_SIDE * SIGLIP_SIDE + 1
    n = int(_NAFLEX.match(scheme).group(1))
    return min(49, n // 4 + 1)


def sample_image_tokens(sizes: Iterable[tuple[int, int]], scheme: str) -> int:
    """Image tokens of one sample or document holding images of ``sizes`` ((w, h) px):
    AnyRes uses its multi-image rule (730 each) when there are ≥ 2 images.

    Raises:
        ValueError: as :func:`image_tokens`.
    """
    sizes = list(sizes)
    multi = {"multi_image": True} if len(sizes) > 1 and _ANYRES.match(scheme) else {}
    return sum(image_tokens(w, h, scheme, **multi) for w, h in sizes)
