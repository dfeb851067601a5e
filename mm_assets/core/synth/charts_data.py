"""Charts generator, part 1: the vocabulary (chart types, question kinds, labels, scales,
phrasings, palette), the options and exact number formatting. See :mod:`.charts`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

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


def val(units: int, precision: int) -> float:
    return round(units / 10 ** precision, precision)


def slope_r(x: list[float], y: list[float]) -> tuple[float, float]:
    xa, ya = np.asarray(x, float), np.asarray(y, float)
    xc, yc = xa - xa.mean(), ya - ya.mean()
    sxx, syy = float((xc * xc).sum()), float((yc * yc).sum())
    if sxx == 0 or syy == 0:
        return 0.0, 0.0
    sxy = float((xc * yc).sum())
    return sxy / sxx, sxy / math.sqrt(sxx * syy)
