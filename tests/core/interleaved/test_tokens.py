"""Image-token schemes against the published processors' rules.

Expected values are derived by hand below from the published algorithms (module doc of
``mm_assets.core.interleaved.tokens``); the last tests also compare with transformers' own
reference functions on many sizes.
"""

import functools
import random
import types

import pytest

from mm_assets.core.interleaved.tokens import (
    ONEVISION_PINPOINTS,
    SCHEMES,
    check_scheme,
    image_tokens,
    min_image_tokens,
    naflex_size,
    sample_image_tokens,
)

# LLaVA-OneVision anyres_max_9, (width, height) -> tokens = 729 base + h*w + h newlines, where
# (h, w) is the 27-per-tile feature map of the best pinpoint, unpadded, then downscaled when
# sqrt(h*w / (9*27^2)) > 1.1.
ANYRES = {
    # every pinpoint: effective = min(int(s)^2, 1) = 1; least waste -> 384x384 (1x1 tile),
    # 27x27, aspect 1 == 1 -> new_w = 27, no padding: 729 + 729 + 27
    (1, 1): 1485,
    # same: effective 100 everywhere, 1x1 tile, 729 + 729 + 27
    (10, 10): 1485,
    # full effective 147456 at 384x384 with the least waste: 1x1 tile
    (384, 384): 1485,
    (336, 336): 1485,
    # full 786432 needs W>=1024, H>=768: (768,1152) wastes least -> 2x3 tiles, map 54x81;
    # 1024/768 = 1.333 <= 81/54 = 1.5 -> new_w = 768->54: 1024*54/768 = 72, pad (81-72)//2 = 4,
    # w = 81 - 8 = 73; 54*73 = 3942, ratio sqrt(3942/6561) = 0.78 -> 729 + 3942 + 54
    (1024, 768): 4725,
    # portrait: (1152,768) -> 3x2 tiles, map 81x54; 0.75 > 54/81 -> new_h = 1024*54/768 = 72,
    # pad 4, h = 73; 73*54 = 3942 + 73 newlines + 729
    (768, 1024): 4744,
    # w=1: int(1*s) = 0 for every pinpoint (s = H/4000 <= 0.576), effective 0 everywhere;
    # the first pinpoint (384,384) is kept (later ones waste more). 27x27; 1/4000 < 1 ->
    # new_w = int(27/4000) = 0, pad 13, w = 27 - 26 = 1: 27*1 + 27 newlines + 729
    (1, 4000): 783,
    # mirrored: h = 1 row: 1*27 + 1 newline + 729
    (4000, 1): 757,
    # w=1000, h=1: s = min(W/1000, H) ; int(s) >= 1 needs W >= 1000; (384,1152): s = 1.152,
    # 1152*1 >= 1000 -> effective = 1000 (full) with the least waste -> 1x3 tiles, map 27x81;
    # new_h = int(81/1000) = 0, pad 13, h = 1: 81 + 1 + 729
    (1000, 1): 811,
    # 6x6 tiles (2304x2304 is the only full-ish best), map 162x162, no pad;
    # ratio = sqrt(162^2 / 6561) = 2.0 > 1.1 -> 162//2 = 81 rows x 81: 6561 + 81 + 729
    (100_000, 100_000): 7371,
    (2304, 2304): 7371,
    # 3x3 tiles, map 81x81, ratio sqrt(6561/6561) = 1.0 <= 1.1: 6561 + 81 + 729
    (1152, 1152): 7371,
    # 2x2, 54x54, ratio 0.67: 2916 + 54 + 729
    (768, 768): 3699,
    (500, 500): 3699,
    # full 2073600 needs W>=1920, H>=1080: (1152,1920) wastes least -> 3x5, map 81x135;
    # 1.778 > 1.667 -> new_h = 1080*135/1920 = 75.94 -> 75, pad 3, h = 75; 75*135 = 10125,
    # ratio sqrt(10125/6561) = 1.2423 > 1.1 -> rows int(75//1.2423) = 60,
    # cols int(135//1.2423) = 108: 60*108 = 6480 + 60 + 729
    (1920, 1080): 7269,
    # full 307200 needs W>=640, H>=480: (768,768) -> 2x2, 54x54; 1.333 > 1 ->
    # new_h = 480*54/640 = 40.5 -> 40, pad 7, h = 40: 40*54 = 2160 + 40 + 729
    (640, 480): 2929,
    # no pinpoint holds 3000 px; W=2304 gives s = 0.768, effective 2304*153 for any H >= 384,
    # least waste (384,2304) -> 1x6, map 27x162; 15 > 6 -> new_h = 200*162/3000 = 10.8 -> 10,
    # pad 8, h = 11: 11*162 = 1782 + 11 + 729
    (3000, 200): 2522,
    # mirrored: (2304,384) -> 6x1, map 162x27, w = 11: 162*11 = 1782 + 162 rows + 729
    (200, 3000): 2673,
    # (2304,2304) and (1920,2304) both give s = 0.576, effective 2304*1728; (1920,2304) wastes
    # less -> 5x6, map 135x162; 1.333 > 1.2 -> new_h = 3000*162/4000 = 121.5 -> 121, pad 7,
    # h = 121; 121*162 = 19602, ratio sqrt(19602/6561) = 1.7285 -> rows int(121//1.7285) = 70,
    # cols int(162//1.7285) = 93: 70*93 = 6510 + 70 + 729
    (4000, 3000): 7309,
    # full 147840 needs W >= 385: (384,768) -> 1x2, map 27x54; 1.0026 <= 2 ->
    # new_w = 385*27/384 = 27.07 -> 27, pad 13, w = 28: 27*28 = 756 + 27 + 729
    (385, 384): 1512,
}

# SigLIP2 NaFlex, patch 16: tokens = ceil(w*s/16) * ceil(h*s/16) (each >= 1) at the largest
# scale s <= 100 keeping it <= N (the bisection ends within 1e-5 below that supremum).
NAFLEX = {
    # s capped at 100: ceil(100/16) = 7 per side for any N >= 49
    (1, 1, 256): 49, (1, 1, 1024): 49,
    # ceil(10s/16) <= 16 -> s <= 25.6 -> 16x16; 24 -> 576; 32 -> 1024 (s = 51.2 < 100)
    (10, 10, 256): 256, (10, 10, 576): 576, (10, 10, 1024): 1024,
    # ceil(3*100/16) = 19 at the cap: 19^2 = 361 < 1024; for 256: s <= 16*16/3 -> 16x16
    (3, 3, 1024): 361, (3, 3, 256): 256,
    # w=1 -> 1 patch while s <= 16; ceil(4000s/16) <= 256 -> s <= 1.024 -> 1 x 256
    (1, 4000, 256): 256, (4000, 1, 256): 256, (1, 4000, 1024): 1024,
    # ceil(128s) <= 576 -> s <= 4.5, other side 1 patch
    (2048, 1, 576): 576,
    # ceil(64s)*ceil(48s): s <= 0.28125 keeps 18x14 = 252; above it 19x14 = 266 > 256
    (1024, 768, 256): 252,
    # s in (0.41667, 0.421875]: 27x21 = 567; above 0.421875 28x21 = 588 > 576
    (1024, 768, 576): 567,
    # just above 0.5625: 37x28 = 1036 > 1024 -> stays 36x27 = 972
    (1024, 768, 1024): 972,
    # ceil(40s)*ceil(30s): (0.4333, 0.45]: 18x14 = 252; above 0.45: 19x14 = 266
    (640, 480, 256): 252,
    # ceil(24s) <= 16 / 24 / 32
    (384, 384, 256): 256, (384, 384, 576): 576, (384, 384, 1024): 1024,
    # ceil(6250s) <= 16 -> s <= 0.00256 (breakpoints 1.6e-4 apart > 1e-5)
    (100_000, 100_000, 256): 256,
    # ceil(120s)*ceil(67.5s): s <= 0.175 gives 21x12 = 252; above: 22x12 = 264
    (1920, 1080, 256): 252,
    # s in (0.2583, 0.26667]: 32x18 = 576; above: 33x19
    (1920, 1080, 576): 576,
    # s in (0.341667, 0.35]: 42x24 = 1008; just above 0.35: 43x24 = 1032 > 1024
    (1920, 1080, 1024): 1008,
    # ceil(31.25s)*ceil(18.75s): at s = 0.64 20x12 = 240; above: 21x13 = 273
    (500, 300, 256): 240, (300, 500, 256): 240,
    # ceil(187.5s)*ceil(12.5s): (0.24, 0.32]: 4 rows, <= 60 cols = 240; above: 61x5 = 305
    (3000, 200, 256): 240, (200, 3000, 256): 240,
    # ceil(250s)*ceil(187.5s): (0.0693, 0.072]: 18x14 = 252; above: 19x14 = 266
    (4000, 3000, 256): 252,
    # w=1: ceil(s/16) x ceil(s): s in (48, 64]: 4 x <= 64 = 256; above: 5 x 65
    (1, 16, 256): 256,
    # at the cap s = 100: ceil(100/16) x ceil(300/16) = 7 x 19 = 133
    (1, 3, 1024): 133,
    # ceil(62.5s) <= 24
    (1000, 1000, 576): 576,
}


@pytest.mark.parametrize("size", sorted(ANYRES))
def test_anyres_max_9_matches_the_hand_derivation(size):
    assert image_tokens(*size, "anyres_max_9") == ANYRES[size]


@pytest.mark.parametrize("case", sorted(NAFLEX))
def test_naflex_matches_the_hand_derivation(case):
    w, h, n = case
    assert image_tokens(w, h, f"naflex_{n}") == NAFLEX[case]
    assert image_tokens(w, h, "naflex_256", max_num_patches=n) == NAFLEX[case]


def test_naflex_size_keeps_the_aspect_and_whole_patches():
    # 1024x768 at 256 -> 18x14 patches of 16 px
    assert naflex_size(1024, 768, 256) == (288, 224)
    assert naflex_size(1, 1, 256) == (112, 112)  # upscaled to the scale cap 100


@pytest.mark.parametrize("size", [(1, 1), (10, 10), (1, 4000), (4000, 1), (1024, 768),
                                  (100_000, 100_000), (640, 480), (3000, 200)])
def test_fixed_is_729_whatever_the_size(size):
    assert image_tokens(*size, "fixed") == 27 * 27 == 729


def test_multi_image_samples_use_onevision_base_plus_newline():
    # OneVision does not tile images of a multi-image sample: 729 + 1 newline each
    assert image_tokens(4000, 3000, "anyres_max_9", multi_image=True) == 730
    assert sample_image_tokens([(1024, 768)], "anyres_max_9") == 4725
    assert sample_image_tokens([(1024, 768), (1, 1)], "anyres_max_9") == 1460
    assert sample_image_tokens([(1024, 768), (1, 1)], "naflex_256") == 252 + 49
    assert sample_image_tokens([(1024, 768), (1, 1)], "fixed") == 1458
    assert sample_image_tokens([], "anyres_max_9") == 0


def test_unknown_and_retired_names_fail_clearly():
    with pytest.raises(ValueError, match="unknown token scheme 'naflx_256'.*fixed"):
        image_tokens(10, 10, "naflx_256")
    with pytest.raises(ValueError, match="'native' is retired.*naflex_1024"):
        check_scheme("native")
    with pytest.raises(ValueError, match="positive integers"):
        image_tokens(0, 10, "fixed")
    assert {"fixed", "anyres_max_9", "naflex_256", "naflex_1024"} <= set(SCHEMES)
    assert check_scheme("naflex_784") == "naflex_784"


def _sizes(n=400):
    rng = random.Random(16)
    big = [(rng.randint(1, 8000), rng.randint(1, 8000)) for _ in range(n)]
    small = [(rng.randint(1, 64), rng.randint(1, 64)) for _ in range(n // 4)]
    thin = [(rng.randint(1, 4), rng.randint(1000, 20000)) for _ in range(n // 8)]
    return big + small + thin + [(w, h) for h, w in thin] + list(ANYRES)


def test_naflex_equals_transformers_reference():
    from transformers.models.siglip2.image_processing_siglip2 import (
        get_image_size_for_max_num_patches as ref,
    )

    for w, h in _sizes():
        for n in (256, 576, 1024):
            th, tw = ref(h, w, 16, n)
            assert image_tokens(w, h, f"naflex_{n}") == (th // 16) * (tw // 16), (w, h, n)


def test_anyres_equals_transformers_processor():
    from transformers.models.llava_onevision.processing_llava_onevision import (
        LlavaOnevisionProcessor as P,
    )

    proc = types.SimpleNamespace(
        image_processor=types.SimpleNamespace(
            image_grid_pinpoints=[list(p) for p in ONEVISION_PINPOINTS]),
        num_image_tokens=729, vision_aspect_ratio="anyres_max_9")
    proc._get_unpadded_features = functools.partial(P._get_unpadded_features, proc)
    for w, h in _sizes():
        assert image_tokens(w, h, "anyres_max_9") == P._get_number_of_features(
            proc, h, w, 384, 384), (w, h)


def test_min_image_tokens_is_a_reached_lower_bound():
    """``min_image_tokens``: no image costs less, and some image costs exactly that (by hand:
    fixed 729; AnyRes 729 + 1 newline-only multi-image rule = 730; NaFlex a 1 x 1 px image
    -> 112 x 112 px = 7 x 7 = 49 patches when N >= 196; naflex_64: N // 4 + 1 = 17)."""
    rng = random.Random(5)
    sizes = [(1, 1), (1, 4000), (4000, 1), (3, 3), (17, 5), (100000, 100000)] + [
        (rng.randint(1, 5000), rng.randint(1, 5000)) for _ in range(150)]
    assert min_image_tokens("fixed") == 729
    assert min_image_tokens("anyres_max_9") == 730 == image_tokens(5, 5, "anyres_max_9",
                                                                   multi_image=True)
    assert min(image_tokens(w, h, "anyres_max_9") for w, h in sizes) > 730
    for n in (64, 256, 576, 1024, 4096):
        least = min_image_tokens(f"naflex_{n}")
        assert least == min(49, n // 4 + 1)
        assert min(image_tokens(w, h, f"naflex_{n}") for w, h in sizes) >= least
    assert image_tokens(1, 1, "naflex_256") == 49 == min_image_tokens("naflex_256")
    with pytest.raises(ValueError, match="retired"):
        min_image_tokens("native")
