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
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
from PIL import Image

from mm_assets.core.synth.draw import checked_pixels

TYPES = ("bar", "line", "pie", "scatter")
KINDS = {"bar": ("read", "max", "min", "difference", "sum"),
         "line": ("read", "max", "min", "difference", "trend"),
         "pie": ("read", "max", "min", "difference", "sum"),
         "scatter": ("read", "max", "min", "trend")}
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (23, 190, 207), (188, 189, 34), (0, 0, 139)]
LABELS = {
    "fruit": ["Apples", "Bananas", "Cherries", "Grapes", "Lemons", "Mangoes", "Oranges",
              "Pears", "Plums", "Kiwis"],
    "city": ["Oslo", "Lima", "Cairo", "Delhi", "Paris", "Tokyo", "Quito", "Rome", "Seoul",
             "Perth"],
    "product": [f"Product {c}" for c in "ABCDEFGHIJ"],
    "team": ["Lions", "Eagles", "Wolves", "Bears", "Sharks", "Hawks", "Tigers", "Foxes", "Owls",
             "Bulls"],
}
ORDERED = {"month": ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                     "Nov", "Dec"],
           "year": [str(y) for y in range(2010, 2026)],
           "week": [f"W{k}" for k in range(1, 17)]}
MEASURES = ["Sales", "Revenue", "Visitors", "Score", "Output", "Rainfall", "Orders", "Count"]
SCALES = (10, 20, 50, 100, 200, 500, 1000)
PHRASES = {
    "read": ["What is the value of {a}?", "What value does the chart show for {a}?",
             "Read the value for {a} from the chart."],
    "read_pie": ["What percentage is {a}?", "What share of the total does {a} have?"],
    "read_scatter": ["What is the y value of point {a}?",
                     "Read the y coordinate of the point labelled {a}."],
    "max": ["Which category has the largest value?", "Which {noun} is highest?"],
    "min": ["Which category has the smallest value?", "Which {noun} is lowest?"],
    "max_scatter": ["Which point has the highest y value?"],
    "min_scatter": ["Which point has the lowest y value?"],
    "difference": ["What is the difference between {a} and {b}?",
                   "By how much do {a} and {b} differ?"],
    "sum": ["What is the total of {items}?", "What do {items} add up to?"],
    "trend": ["Is the series increasing or decreasing overall from {a} to {b}?",
              ("Overall, does the value go up or down from {a} to {b}? Answer increasing or "
               "decreasing.")],
    "trend_scatter": ["As x increases, does y tend to increase or decrease?"],
}
MIN_R = 0.7  # |correlation| a trend question needs


@dataclass(frozen=True, slots=True)
class ChartOptions:
    """Options of the charts generator (spec ``options``).

    Attributes:
        types: chart types drawn (uniformly), a subset of bar, line, pie, scatter.
        value_labels: probability that values are printed on bars / line points / wedges.
        min_items, max_items: categories per chart (bars, line points, wedges <= 6, points).
    """

    types: tuple = TYPES
    value_labels: float = 0.5
    min_items: int = 3
    max_items: int = 8


def options(raw: dict) -> ChartOptions:
    from mm_assets.core.synth.spec import SpecError, check_known

    check_known(ChartOptions, raw, "charts")
    raw = dict(raw)
    if "types" in raw:
        if not isinstance(raw["types"], (list, tuple)) or not raw["types"] or \
                set(raw["types"]) - set(TYPES):
            raise SpecError(f"options.types: a non-empty list of {list(TYPES)}, got "
                            f"{raw['types']!r}")
        raw["types"] = tuple(t for t in TYPES if t in raw["types"])
    o = ChartOptions(**raw)
    if not 0 <= o.value_labels <= 1:
        raise SpecError(f"options.value_labels: a probability in [0, 1], got {o.value_labels!r}")
    if not (isinstance(o.min_items, int) and isinstance(o.max_items, int)
            and 3 <= o.min_items <= o.max_items <= 10):
        raise SpecError(f"options: need 3 <= min_items <= max_items <= 10, got "
                        f"{o.min_items}, {o.max_items}")
    return o


# ------------------------------------------------------------------ numbers
def fmt(units: int, precision: int) -> str:
    """``units / 10**precision`` printed with ``precision`` decimals, exactly."""
    if precision == 0:
        return str(units)
    sign = "-" if units < 0 else ""
    q, r = divmod(abs(units), 10 ** precision)
    return f"{sign}{q}.{r:0{precision}d}"


def _val(units: int, precision: int) -> float:
    return round(units / 10 ** precision, precision)


def _slope_r(x: list[float], y: list[float]) -> tuple[float, float]:
    xa, ya = np.asarray(x, float), np.asarray(y, float)
    xc, yc = xa - xa.mean(), ya - ya.mean()
    sxx, syy = float((xc * xc).sum()), float((yc * yc).sum())
    if sxx == 0 or syy == 0:
        return 0.0, 0.0
    sxy = float((xc * yc).sum())
    return sxy / sxx, sxy / math.sqrt(sxx * syy)


# ------------------------------------------------------------------ parameters
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
            slope, r = _slope_r(list(t) if ctype == "line" else xs, units)
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


# ------------------------------------------------------------------ rendering
_FIG = threading.local()
_RC = {"font.family": "DejaVu Sans", "axes.unicode_minus": True, "text.hinting": "auto",
       "path.simplify": False, "svg.hashsalt": "mm"}


def _figure(size: int):
    """One reusable Figure per thread and size (4 x 4 in, dpi = size / 4)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cache = getattr(_FIG, "figs", None)
    if cache is None:
        cache = _FIG.figs = {}
    if size not in cache:
        fig = Figure(figsize=(4, 4), dpi=size / 4)
        FigureCanvasAgg(fig)
        cache[size] = fig
    fig = cache[size]
    fig.clear()
    return fig


def _margins(fig, p: dict, title: bool) -> None:
    """Fixed subplot margins per layout (tight_layout measured every text: a third of the
    render time)."""
    top = 0.91 if title else 0.96
    if p["type"] == "pie":
        fig.subplots_adjust(0.1, 0.06, 0.9, top - 0.02)
        return
    n, s = len(p["labels"]), p["style"]
    left = 0.18  # room for 4-character tick labels and the axis label
    bottom = 0.12
    if p["type"] == "bar" and s["horizontal"]:
        left = 0.26 if p["noun"] == "product" else 0.2
    elif p["type"] == "bar" and n > 5:
        bottom = 0.22 if p["noun"] == "product" else 0.17
    elif p["type"] == "line" and n > 6:
        bottom = 0.15
    fig.subplots_adjust(left, bottom, 0.97, top)


def _rgb(i: int) -> tuple[float, float, float]:
    return tuple(c / 255 for c in PALETTE[i])


def render(p: dict, size: int) -> Image.Image:
    """The chart as an RGB image of ``size`` x ``size`` pixels."""
    import matplotlib

    s, prec = p["style"], p["precision"]
    vals = [_val(u, prec) for u in p["units"]]
    labels = p["labels"]
    with matplotlib.rc_context({**_RC, "font.size": s["font_pt"]}):
        fig = _figure(size)
        fig.patch.set_facecolor(s["background"])
        ax = fig.add_subplot()
        ax.set_facecolor(s["background"])
        title = (None if not s["title"] else s["measure"] if p["type"] == "scatter"
                 else f"{s['measure']} by {p['noun']}")
        colors = [_rgb(c) for c in s["colors"]]
        if p["type"] == "bar":
            pos = np.arange(len(vals))
            cs = colors if len(colors) > 1 else colors * len(vals)
            if s["horizontal"]:
                bars = ax.barh(pos, vals, color=cs, height=0.6, zorder=2)
                ax.set_yticks(pos, labels)
                ax.invert_yaxis()
                ax.set_xlim(0, p["scale"] * 1.15)
                if s["grid"]:
                    ax.grid(axis="x", color="#d0d0d0", zorder=0)
            else:
                bars = ax.bar(pos, vals, color=cs, width=0.6, zorder=2)
                ax.set_xticks(pos, labels, rotation=30 if len(vals) > 5 else 0,
                              ha="right" if len(vals) > 5 else "center")
                ax.set_ylim(0, p["scale"] * 1.12)
                if s["grid"]:
                    ax.grid(axis="y", color="#d0d0d0", zorder=0)
            if s["value_labels"]:
                ax.bar_label(bars, labels=[fmt(u, prec) for u in p["units"]], padding=2,
                             fontsize=s["font_pt"] * 0.85)
            ax.set_ylabel(None if s["horizontal"] else s["measure"])
        elif p["type"] == "line":
            pos = np.arange(len(vals))
            ax.plot(pos, vals, color=colors[0], marker=s["marker"], linewidth=2.2,
                    markersize=6, zorder=3)
            ax.set_xticks(pos, labels, rotation=45 if len(vals) > 6 else 0,
                          ha="right" if len(vals) > 6 else "center")
            ax.set_ylim(0, p["scale"] * 1.12)
            ax.set_xlim(-0.5, len(vals) - 0.5)
            if s["value_labels"]:
                for x, (u, v) in enumerate(zip(p["units"], vals, strict=True)):
                    ax.annotate(fmt(u, prec), (x, v), textcoords="offset points",
                                xytext=(0, 6), ha="center", fontsize=s["font_pt"] * 0.8)
            if s["grid"]:
                ax.grid(color="#d0d0d0", zorder=0)
            ax.set_ylabel(s["measure"])
        elif p["type"] == "pie":
            wedges, _ = ax.pie(vals, labels=labels, colors=colors, startangle=90,
                               counterclock=False, wedgeprops={"linewidth": 1,
                                                               "edgecolor": "white"},
                               textprops={"fontsize": s["font_pt"] * 0.9})
            if s["value_labels"]:
                for w, u in zip(wedges, p["units"], strict=True):
                    a = math.radians((w.theta1 + w.theta2) / 2)
                    ax.text(0.62 * math.cos(a), 0.62 * math.sin(a), fmt(u, prec) + "%",
                            ha="center", va="center", fontsize=s["font_pt"] * 0.8,
                            color="white", fontweight="bold")
            ax.set_aspect("equal")
        else:
            xs = [_val(u, prec) for u in p["x_units"]]
            ax.scatter(xs, vals, color=colors[0], marker=s["marker"], s=36, zorder=3)
            for x, y, lab in zip(xs, vals, labels, strict=True):
                ax.annotate(lab, (x, y), textcoords="offset points", xytext=(5, 4),
                            fontsize=s["font_pt"] * 0.9, fontweight="bold")
            ax.set_xlim(0, p["scale"] * 1.1)
            ax.set_ylim(0, p["scale"] * 1.1)
            if s["grid"]:
                ax.grid(color="#d0d0d0", zorder=0)
            ax.set_xlabel("x")
            ax.set_ylabel("y")
        if title:
            ax.set_title(title, fontsize=s["font_pt"] * 1.1)
        _margins(fig, p, bool(title))
        fig.canvas.draw()
        arr = np.asarray(fig.canvas.buffer_rgba())
        im = Image.fromarray(arr[:, :, :3].copy())
    if im.size != (size, size):  # dpi rounding: never expected, but keep the contract
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    return im


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
        out.update({"type": "number", "value": _val(u, prec), "unit": pct,
                    "tolerance": _val(tol, prec), "precision": prec})
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
        x = ([_val(u, prec) for u in p["x_units"]] if ctype == "scatter"
             else list(range(len(units))))
        slope, r = _slope_r(x, units)
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
