"""Charts with known data: bar, line, pie and scatter charts rendered with matplotlib (Agg,
no pyplot state, DejaVu fonts bundled with matplotlib) from a generated table.

Parameters (``metadata.synthetic.params``): the chart type, the table (category labels,
values as integers ``units`` at a stated ``precision``: value = units / 10**precision; pie
values are shares of 100 %; scatter points have ``x_units`` too), the axis maximum
``scale``, style (colours, grid, value labels, horizontal bars, markers, background, title)
and the question (kind, phrasing, the categories it names).

Question kinds (``answer.kind``) and answers; numbers are printed at the table's precision,
``answer.tolerance`` is the stated absolute tolerance (same unit as the answer; 0 = exact):

- ``read``: "What is the value of Apples?" -> ``42.5`` (bar, line; scatter: the y value of a
  labelled point; pie: "What percentage is Apples?" -> ``23.5%``). Tolerance 0 when the value
  is printed on the chart, else 3 % of the axis maximum (pie: 3 percentage points).
- ``max`` / ``min``: "Which category has the largest value?" -> the label (scatter: the point
  with the highest / lowest y). The largest (smallest) value leads the next by at least
  4 % of the axis maximum (pie: 2 points), so the answer is visible.
- ``difference``: |a - b| of two named categories (bar, line, pie); tolerance 2 x read.
- ``sum``: total of 2 or 3 named categories (bar, pie); tolerance k x read.
- ``trend``: line: "increasing" / "decreasing" over the x axis (sign of the least-squares
  slope, |r| >= 0.7); scatter: whether y tends to increase or decrease with x (same rule).

Spread: values of bar and scatter reads, and of lines without a trend question, are uniform
over ``[0.05, 1] x scale`` (``answer.bin`` = ``value_decile:D``); the max/min position is
uniform over the table (``position:I``); trend directions are 50/50 (``trend:up|down``).

The checker re-derives the answer from the table and question parameters (argmax/argmin
must be unique with the margin above, trends must pass the |r| rule, pie shares must sum to
100 %, values inside the axis), rebuilds question, answer and tolerance, and checks the pixels:
the image decodes at the spec size and every series / wedge colour is drawn.

Modules: :mod:`.charts_data` (vocabulary, options, exact numbers), :mod:`.charts_params`
(drawing the parameters), :mod:`.charts_render` (matplotlib), this one (questions, answers,
the checker; it re-exports the generator API: ``options``, ``sample_params``, ``render``,
``qa``, ``check``).
"""

from __future__ import annotations

import math

import numpy as np

from mm_assets.core.synth.charts_data import (  # noqa: F401  (re-exported: the generator API)
    KINDS,
    MIN_R,
    PALETTE,
    PHRASES,
    TYPES,
    ChartOptions,
    fmt,
    options,
    slope_r,
    val,
)
from mm_assets.core.synth.charts_params import sample_params  # noqa: F401
from mm_assets.core.synth.charts_render import render  # noqa: F401
from mm_assets.core.synth.draw import checked_pixels


# ------------------------------------------------------------------ questions and answers
def tolerance_units(p: dict, kind: str) -> int:
    """The stated tolerance of a numeric answer, in units of the table's precision."""
    unit = 10 ** p["precision"]
    if p["style"]["value_labels"] and p["type"] != "scatter":
        return 0
    read = 3 * unit if p["type"] == "pie" else math.ceil(0.03 * p["scale"] * unit)
    k = {"read": 1, "difference": 2, "sum": len(p["question"].get("items", []))}[kind]
    return read * k


def _decile(u: int, p: dict) -> int:
    unit = 10 ** p["precision"]
    lo, hi = math.ceil(0.05 * p["scale"] * unit), p["scale"] * unit
    return min(9, (u - lo) * 10 // (hi - lo + 1))


def qa(p: dict, size: int) -> tuple[str, str, dict]:
    """(question, answer, structured answer) from the table and the question parameters.

    Raises:
        ValueError: the answer is not determined (tied or too close max/min, weak trend).
    """
    q, prec, units, labels = p["question"], p["precision"], p["units"], p["labels"]
    ctype, kind = p["type"], q["kind"]
    key = kind + ("_scatter" if ctype == "scatter" and kind in ("read", "max", "min", "trend")
                  else "_pie" if ctype == "pie" and kind == "read" else "")
    phrase = PHRASES[key][q["phrase"]]
    items = [labels[i] for i in q.get("items", [])]
    pct = "%" if ctype == "pie" else ""
    unit = 10 ** prec
    out: dict = {"kind": kind, "chart": ctype}
    if kind in ("read", "difference", "sum"):
        if kind == "read":
            u = units[q["items"][0]]
            question = phrase.format(a=items[0])
            out["bin"] = (f"percent:{min(9, u * 10 // (100 * unit))}" if ctype == "pie"
                          else f"value_decile:{_decile(u, p)}")
        elif kind == "difference":
            a, b = q["items"]
            u = abs(units[a] - units[b])
            question = phrase.format(a=items[0], b=items[1])
            out["bin"] = f"difference:{min(9, u * 10 // ((100 if pct else p['scale']) * unit))}"
        else:
            u = sum(units[i] for i in q["items"])
            names = ", ".join(items[:-1]) + " and " + items[-1]
            question = phrase.format(items=names)
            out["bin"] = (f"sum:{min(9, u * 10 // ((100 if pct else p['scale'] * len(items)) * unit))}")
        answer = fmt(u, prec) + pct
        tol = tolerance_units(p, kind)
        out.update({"type": "number", "value": val(u, prec), "unit": pct,
                    "tolerance": val(tol, prec), "precision": prec})
    elif kind in ("max", "min"):
        order = sorted(range(len(units)), key=lambda i: units[i], reverse=(kind == "max"))
        gap = 2 * unit if ctype == "pie" else math.ceil(0.04 * p["scale"] * unit)
        if abs(units[order[0]] - units[order[1]]) < gap:
            raise ValueError("extreme_not_distinct")
        i = order[0]
        question, answer = phrase.format(noun=p["noun"]), labels[i]
        out.update({"type": "label", "value": answer, "index": i, "tolerance": 0,
                    "bin": f"position:{i}"})
    elif kind == "trend":
        x = ([val(u, prec) for u in p["x_units"]] if ctype == "scatter"
             else list(range(len(units))))
        slope, r = slope_r(x, units)
        if abs(r) < MIN_R:
            raise ValueError("trend_too_weak")
        up = slope > 0
        question = phrase.format(a=labels[0], b=labels[-1])
        answer = "increasing" if up else "decreasing"
        out.update({"type": "direction", "value": answer, "r": round(r, 4), "tolerance": 0,
                    "bin": f"trend:{'up' if up else 'down'}"})
    else:
        raise ValueError(f"unknown question kind {kind!r}")
    return question, answer, out


def _consistent(p: dict) -> str | None:
    unit = 10 ** p["precision"]
    n = len(p["labels"])
    if len(p["units"]) != n or len(set(p["labels"])) != n or n < 2:
        return "table_shape"
    if p["type"] == "pie":
        if sum(p["units"]) != 100 * unit or min(p["units"]) <= 0:
            return "pie_not_100_percent"
    elif not all(0 < u <= p["scale"] * unit for u in p["units"] + p.get("x_units", [])):
        return "value_outside_axis"
    if p["type"] == "scatter" and len(p.get("x_units", [])) != n:
        return "table_shape"
    if len(p["style"]["colors"]) not in (1, n):
        return "colours_shape"
    return None


def check(p: dict, question: str, answer: str, image: bytes, size: int) -> str | None:
    """None when the sample is right, else the reason (see module doc)."""
    bad = _consistent(p)
    if bad:
        return bad
    try:
        q, a, _ = qa(p, size)
    except ValueError as e:
        return str(e).split()[0]
    if (q, a) != (question, answer):
        return "answer_mismatch"
    px, bad = checked_pixels(image, size, np.int16)
    if bad:
        return bad
    px = px.reshape(-1, 3)
    for c in p["style"]["colors"]:
        if int((np.abs(px - np.array(PALETTE[c], np.int16)).max(axis=1) <= 8).sum()) < 3:
            return "series_colour_not_drawn"
    return None
