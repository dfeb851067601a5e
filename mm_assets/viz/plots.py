"""Plots for asset metadata and reports: matplotlib figures rendered to PNG bytes.

Every plot is 1000 px wide (10 in at 100 dpi), labels both axes with their unit, counts one
embedding space at a time, and uses a log axis where the data spans decades (perplexity).

How they show in Dagster 1.13: a markdown metadata value renders inline in the asset page only
when it is under 1,000 characters (ui-core ``MetadataEntry.tsx``, ``expandSmallValues``); an
inline PNG never is, so plots open from "[Show Markdown]" in a dialog as wide as the image
(at most 80% of the window). Path and URL values render as text links only (a ``file://`` link
cannot open from the http UI), and there is no image metadata type. Hence: the PNG inline in
markdown, readable at full size in that dialog, beside the figures as plain numbers or a table
of < 5 columns, which do render inline.
"""

from __future__ import annotations

import base64
import io

import numpy as np

WIDTH_IN, HEIGHT_IN, DPI = 10.0, 4.5, 100


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 12, "axes.titlesize": 14})
    return plt


def to_png(fig) -> bytes:
    """PNG bytes of a figure (closed afterwards): 1000 px wide at the default size."""
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def png_markdown(fig_or_png):
    """A figure (or PNG bytes) as a Dagster markdown value with the PNG inline."""
    from dagster import MetadataValue

    png = fig_or_png if isinstance(fig_or_png, bytes) else to_png(fig_or_png)
    return MetadataValue.md(f"![plot](data:image/png;base64,{base64.b64encode(png).decode()})")


def bar_png(xs: list, ys: list, title: str, xlabel: str, ylabel: str = "samples",
            log_y: bool = False) -> bytes:
    """Bars ``ys`` over categories ``xs``, each bar labelled with its value."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(WIDTH_IN, HEIGHT_IN))
    bars = ax.bar([str(x) for x in xs], ys, color="#4a78b0")
    ax.bar_label(bars, fontsize=10)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel + (" (log scale)" if log_y else ""))
    if log_y:
        ax.set_yscale("log")
    fig.tight_layout()
    return to_png(fig)


def bar_plot(xs: list, ys: list, title: str, xlabel: str, ylabel: str = "samples",
             log_y: bool = False):
    """:func:`bar_png` as a Dagster markdown value."""
    return png_markdown(bar_png(xs, ys, title, xlabel, ylabel, log_y))


def hbar_png(labels: list[str], values: list[int], title: str, xlabel: str = "samples",
             colors: list[str] | None = None) -> bytes:
    """Horizontal bars, first label on top (the corpus funnel), each with its value."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(WIDTH_IN, max(3.0, 0.3 * len(labels) + 1.2)))
    bars = ax.barh(labels[::-1], values[::-1], color=(colors or ["#4a78b0"] * len(labels))[::-1])
    ax.bar_label(bars, padding=3, fontsize=10)
    ax.set(title=title, xlabel=xlabel)
    ax.margins(x=0.12)
    fig.tight_layout()
    return to_png(fig)


def ppl_histogram(ppl: np.ndarray, edges: list[float], title: str = "assistant perplexity"):
    """Histogram of perplexity on a log axis with the 9 decile edges marked, as markdown.

    Args:
        ppl: (N,) float perplexities; NaN (unscored) are left out and counted in the title.
    """
    plt = _plt()
    ok = ppl[np.isfinite(ppl) & (ppl > 0)]
    fig, ax = plt.subplots(figsize=(WIDTH_IN, HEIGHT_IN))
    if ok.size:
        lo, hi = float(ok.min()), float(ok.max())
        bins = np.geomspace(lo, hi * 1.0001, 40) if hi > lo else 10
        ax.hist(ok, bins=bins, color="#4a78b0")
        ax.set_xscale("log")
    for i, e in enumerate(edges):
        ax.axvline(e, color="#c33", linestyle="--", linewidth=1)
        ax.annotate(str(i + 1), (e, 1.0), xycoords=("data", "axes fraction"), va="bottom",
                    ha="center", fontsize=9, color="#c33")
    ax.set(title=f"{title}: {ok.size} scored, {ppl.size - ok.size} unscored; dashed = decile "
           "edges 1-9\n", xlabel="perplexity (log scale)", ylabel="samples")
    fig.tight_layout()
    return png_markdown(fig)


def removal_curve_plot(scores: np.ndarray, eps: float, space: str):
    """SemDeDup fraction removed vs ε (log axis) with the chosen ε marked, as markdown.

    Args:
        scores: (N,) SemDeDup scores of the unique samples of one space (NaN: not scored).
        eps: the ε used; the legend shows it to 3 significant digits with what it removes.
    """
    from mm_assets.core.semantic.semdedup import removal_curve

    plt = _plt()
    n = int(np.isfinite(scores).sum())
    lo = min(1e-4, eps / 2) if eps > 0 else 1e-4
    grid = np.geomspace(lo, 0.5, 80)
    at_eps = float(removal_curve(scores, np.array([eps]))[0])
    fig, ax = plt.subplots(figsize=(WIDTH_IN, HEIGHT_IN))
    ax.plot(grid, removal_curve(scores, grid), color="#4a78b0")
    ax.axvline(max(eps, lo), color="#c33", linestyle="--",
               label=f"ε = {eps:.3g}: removes {round(at_eps * n)} of {n} ({at_eps:.1%})")
    ax.set_xscale("log")
    ax.set(title=f"SemDeDup removal vs ε ({space} space, {n} unique samples)",
           xlabel="ε (duplicate when cosine ≥ 1 − ε; log scale)",
           ylabel="fraction of unique samples removed")
    ax.legend(loc="upper left")
    fig.tight_layout()
    return png_markdown(fig)


def funnel_png(funnel) -> bytes:
    """The corpus funnel (a :class:`~mm_assets.core.report.funnel.Funnel`) as horizontal bars:
    every ``total`` figure of the flow, then each mixture's drawn samples."""
    rows = [r for r in funnel.rows if r.kind == "total"
            and (not r.stage.startswith("mixture ") or r.figure.startswith("drawn"))]
    mix = [r.stage.startswith("mixture ") for r in rows]
    labels = [r.stage if m else f"{r.figure} ({r.stage})" for r, m in zip(rows, mix, strict=True)]
    return hbar_png(labels, [r.n for r in rows], "samples after each stage (blue), "
                    "drawn per mixture (orange)",
                    colors=["#e08a2c" if m else "#4a78b0" for m in mix])
