"""Charts generator, part 3: rendering the parameters with matplotlib (Agg canvas, no pyplot
state, DejaVu fonts bundled with matplotlib). See :mod:`.charts`."""

from __future__ import annotations

import math
import threading

import numpy as np
from PIL import Image

from mm_assets.core.synth.charts_data import PALETTE, fmt, val

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
    vals = [val(u, prec) for u in p["units"]]
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
            xs = [val(u, prec) for u in p["x_units"]]
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
