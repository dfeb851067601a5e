"""Drawing helpers shared by the generators: bundled fonts, colours, PNG encoding, shapes.

Fonts are the DejaVu faces matplotlib ships (no system font lookup), so a seed renders the
same bytes on any machine with the same Pillow/zlib.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageFont

SS = 2  # supersampling factor: draw at SS x size, then box-reduce (interiors keep exact colours)

FONTS = {"sans": "DejaVuSans.ttf", "sans_bold": "DejaVuSans-Bold.ttf",
         "serif": "DejaVuSerif.ttf", "serif_bold": "DejaVuSerif-Bold.ttf"}


@lru_cache(maxsize=256)
def font(name: str, px: int) -> ImageFont.FreeTypeFont:
    import matplotlib

    path = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / FONTS[name]
    return ImageFont.truetype(str(path), max(6, int(px)))


def checked_pixels(image: bytes, size: int, dtype=np.int32
                   ) -> tuple[np.ndarray | None, str | None]:
    """The checkers' first step: ``image`` decoded as RGB pixels (size×size×3, ``dtype``), or
    the quarantine reason (``image_undecodable``, ``image_size``) and None."""
    try:
        im = Image.open(io.BytesIO(image)).convert("RGB")
    except Exception:  # noqa: BLE001 - any decode error is the reason
        return None, "image_undecodable"
    if im.size != (size, size):
        return None, "image_size"
    return np.asarray(im, dtype=dtype), None


def png_bytes(im: Image.Image) -> bytes:
    """PNG with fixed settings and no metadata (same pixels -> same bytes)."""
    buf = io.BytesIO()
    im.save(buf, "PNG", compress_level=3)
    return buf.getvalue()


def luminance(rgb) -> float:
    r, g, b = (c / 255 for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def rgb_from_hsv(rng, h_range=(0.0, 1.0), s_range=(0.0, 1.0), v_range=(0.0, 1.0)) -> list[int]:
    import colorsys

    h, s, v = (float(rng.uniform(*r)) for r in (h_range, s_range, v_range))
    return [round(c * 255) for c in colorsys.hsv_to_rgb(h, s, v)]


def polygon(shape: str, cx: float, cy: float, r: float, rot: float) -> list[tuple[float, float]]:
    """Vertices of a regular-ish shape of circumradius ``r`` (rotation ``rot`` degrees)."""
    a0 = math.radians(rot)
    if shape == "square":
        n, radii, off = 4, [r], math.pi / 4
    elif shape == "triangle":
        n, radii, off = 3, [r], -math.pi / 2
    elif shape == "hexagon":
        n, radii, off = 6, [r], 0.0
    elif shape == "star":
        n, radii, off = 10, [r, 0.45 * r], -math.pi / 2
    elif shape == "diamond":
        pts = [(0, -r), (0.62 * r, 0), (0, r), (-0.62 * r, 0)]
        c, s = math.cos(a0), math.sin(a0)
        return [(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts]
    else:
        raise ValueError(f"no polygon for shape {shape!r}")
    return [(cx + radii[k % len(radii)] * math.cos(off + a0 + 2 * math.pi * k / n),
             cy + radii[k % len(radii)] * math.sin(off + a0 + 2 * math.pi * k / n))
            for k in range(n)]


def inside_polygon(x: float, y: float, pts: list[tuple[float, float]]) -> bool:
    """Ray casting: ``(x, y)`` strictly inside the polygon ``pts``."""
    inside, n = False, len(pts)
    for k in range(n):
        (x1, y1), (x2, y2) = pts[k], pts[(k + 1) % n]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside
