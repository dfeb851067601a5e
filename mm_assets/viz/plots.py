"""Plots for asset metadata: matplotlib figures as inline PNG markdown (shown in the Dagster UI)."""

import base64
import io

from dagster import MetadataValue


def png_markdown(fig) -> MetadataValue:
    """A matplotlib figure as markdown with an inline PNG (shown in the Dagster UI)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return MetadataValue.md(f"![plot](data:image/png;base64,"
                            f"{base64.b64encode(buf.getvalue()).decode()})")


def bar_plot(xs: list, ys: list, title: str, xlabel: str) -> MetadataValue:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar([str(x) for x in xs], ys)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    fig.tight_layout()
    return png_markdown(fig)
