"""Ablation plots: one bar chart per benchmark, mixtures on the x axis (house style of
:mod:`mm_assets.viz.plots`: 1000 px wide, both axes labelled)."""

from __future__ import annotations

from mm_assets.viz.plots import HEIGHT_IN, WIDTH_IN, _plt, to_png


def benchmark_png(c, col: tuple[str, str]) -> bytes:
    """Bars: the mean of ``col`` per mixture (error bar: std over runs when n > 1), the
    baseline in a darker colour, each bar labelled with its mean and run count."""
    plt = _plt()
    xs, ys, errs, colors, labels = [], [], [], [], []
    for m in c.mixtures:
        x = c.cell(m, *col)
        if x is None:
            continue
        xs.append(m)
        ys.append(x["mean"])
        errs.append(x["std"] or 0.0)
        colors.append("#1f3f66" if m == c.baseline else "#4a78b0")
        labels.append(f"{x['mean']:.4g} (n={x['n_runs']})")
    fig, ax = plt.subplots(figsize=(WIDTH_IN, HEIGHT_IN))
    bars = ax.bar(xs, ys, yerr=errs, color=colors, capsize=4)
    ax.bar_label(bars, labels=labels, fontsize=10)
    if ys and max(ys) > 0:
        ax.set_ylim(top=max(y + e for y, e in zip(ys, errs, strict=True)) * 1.15)
    base = c.cell(c.baseline, *col)
    if base is not None:
        ax.axhline(base["mean"], color="#1f3f66", linestyle="--", linewidth=1,
                   label=f"baseline {c.baseline}")
        ax.legend(loc="lower right", fontsize=10)
    ax.set(title=f"{col[0]}: {col[1]} per mixture", xlabel="mixture (recipe)",
           ylabel=f"{col[1]} (mean over runs)")
    ax.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    return to_png(fig)


def benchmark_plots(c) -> dict[str, bytes]:
    """``{"benchmark (metric)": PNG}`` for every column of a comparison."""
    return {f"{b} ({m})": benchmark_png(c, (b, m)) for b, m in c.columns}
