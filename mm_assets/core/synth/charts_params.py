"""Charts generator, part 2: drawing a chart's parameters (table, question, style) from a
seeded generator. See :mod:`.charts` for the parameter format and the spread rules."""

from __future__ import annotations

import math

import numpy as np

from mm_assets.core.synth.charts_data import (
    KINDS,
    LABELS,
    MEASURES,
    MIN_R,
    ORDERED,
    PALETTE,
    PHRASES,
    SCALES,
    ChartOptions,
    slope_r,
)


def _margin_ok(units: list[int], kind: str, gap: int) -> bool:
    s = sorted(units, reverse=(kind == "max"))
    return abs(s[0] - s[1]) >= gap


def _uniform_units(rng, n: int, lo: int, hi: int) -> list[int]:
    return [int(v) for v in rng.integers(lo, hi + 1, n)]


def sample_params(rng: np.random.Generator, size: int, o: ChartOptions) -> dict:
    ctype = str(rng.choice(list(o.types)))
    kind = str(rng.choice(list(KINDS[ctype])))
    precision = int(rng.integers(2))
    scale = int(rng.choice(SCALES[:4] if precision else SCALES))
    unit = 10 ** precision
    lo, hi = math.ceil(0.05 * scale * unit), scale * unit
    max_items = min(o.max_items, 6) if ctype == "pie" else o.max_items
    n = int(rng.integers(min(o.min_items, max_items), max_items + 1))
    p: dict = {"type": ctype, "precision": precision, "scale": scale}
    if ctype in ("bar", "pie"):
        family = str(rng.choice(list(LABELS)))
        idx = sorted(int(i) for i in rng.choice(len(LABELS[family]), n, replace=False))
        p["labels"], p["noun"] = [LABELS[family][i] for i in idx], family
    elif ctype == "line":
        family = str(rng.choice(list(ORDERED)))
        start = int(rng.integers(len(ORDERED[family]) - n + 1))
        p["labels"], p["noun"] = ORDERED[family][start:start + n], family
    else:
        p["labels"], p["noun"] = [chr(ord("A") + k) for k in range(n)], "point"
    gap = math.ceil(0.04 * scale * unit)
    if ctype == "pie":
        total, min_share = 100 * unit, 4 * unit
        while True:  # shares >= 4 % summing to 100 %
            cuts = sorted(int(c) for c in rng.choice(np.arange(1, total - n * min_share + n),
                                                     n - 1, replace=False))
            parts = np.diff([0, *cuts, total - n * min_share + n]) - 1
            units = [int(v) + min_share for v in parts]
            if kind not in ("max", "min") or _margin_ok(units, kind, 2 * unit):
                break
        p["units"] = units
    elif kind == "trend":
        direction = str(rng.choice(["up", "down"]))
        while True:
            if ctype == "scatter":
                xs = _uniform_units(rng, n, lo, hi)
                t = (np.asarray(xs) - lo) / (hi - lo)
            else:
                t = np.linspace(0, 1, n)
            span = float(rng.uniform(0.3, 0.9)) * (hi - lo)
            base = float(rng.uniform(lo, hi - span))
            frac = t if direction == "up" else 1 - t
            noise = rng.normal(0, float(rng.uniform(0.03, 0.15)) * (hi - lo), n)
            units = [int(v) for v in np.clip(np.round(base + span * frac + noise), lo, hi)]
            slope, r = slope_r(list(t) if ctype == "line" else xs, units)
            if abs(r) >= MIN_R and (slope > 0) == (direction == "up"):
                break
        p["units"] = units
        if ctype == "scatter":
            p["x_units"] = xs
    else:
        while True:
            units = _uniform_units(rng, n, lo, hi)
            xs = _uniform_units(rng, n, lo, hi) if ctype == "scatter" else None
            if kind in ("max", "min") and not _margin_ok(units, kind, gap):
                continue
            if xs is not None and not _spread(xs, units, hi):
                continue
            break
        p["units"] = units
        if xs is not None:
            p["x_units"] = xs
    q: dict = {"kind": kind}
    key = kind + ("_scatter" if ctype == "scatter" and kind in ("read", "max", "min", "trend")
                  else "_pie" if ctype == "pie" and kind == "read" else "")
    q["phrase"] = int(rng.integers(len(PHRASES[key])))
    if kind == "read":
        q["items"] = [int(rng.integers(n))]
    elif kind == "difference":
        q["items"] = sorted(int(i) for i in rng.choice(n, 2, replace=False))
    elif kind == "sum":
        k = int(rng.integers(2, 4))
        q["items"] = sorted(int(i) for i in rng.choice(n, k, replace=False))
    p["question"] = q
    colors = [int(i) for i in rng.permutation(len(PALETTE))[:n]]
    p["style"] = {
        "colors": colors if ctype == "pie" or (ctype == "bar" and rng.random() < 0.4)
        else colors[:1],
        "value_labels": bool(ctype != "scatter" and rng.random() < o.value_labels),
        "grid": bool(rng.random() < 0.6),
        "horizontal": bool(ctype == "bar" and rng.random() < 0.3),
        "marker": str(rng.choice(["o", "s", "^", "D"])),
        "background": str(rng.choice(["#ffffff", "#f7f7f7", "#fdfaf2"])),
        "title": bool(rng.random() < 0.7),
        "measure": str(rng.choice(MEASURES)),
        "font_pt": round(float(rng.uniform(8.5, 11.0)), 1),
    }
    return p


def _spread(xs: list[int], ys: list[int], hi: int) -> bool:
    """Scatter points at least 6 % of the axis apart (their letter labels stay readable)."""
    pts = list(zip(xs, ys, strict=True))
    return all(max(abs(a[0] - b[0]), abs(a[1] - b[1])) >= 0.06 * hi
               for i, a in enumerate(pts) for b in pts[i + 1:])
