"""Mixtures x benchmarks: the recorded results compared with a baseline mixture.

One cell per (mixture, benchmark): the mean of the benchmark's primary metric over the eval
runs (recorded files) of the mixture's *current* build, the number of runs, and the
difference to the baseline's mean. Results of earlier builds (stale digests) are never
averaged in; each row says how many stale runs it has. Each row carries its recipe's
parameters (sources, ratio, deciles, decile and cluster weights, total, seed) from the
mixture's manifest. Rendered as text (CLI), as a markdown table (asset metadata) and as a
self-contained HTML page with one bar plot per benchmark (the plots are made by the caller:
:func:`mm_assets.viz.evals.benchmark_plots`).
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field

import polars as pl

from mm_assets.core import layout
from mm_assets.core.evals.record import built_mixtures, read_results
from mm_assets.core.storage import Store


@dataclass(frozen=True)
class CompareConfig:
    """The ablation comparison.

    Attributes:
        baseline: the mixture every other one is compared with (results of its current build).
    """

    baseline: str = "baseline_raw"

    def __post_init__(self) -> None:
        if not self.baseline.strip():
            raise ValueError("baseline: name a mixture")


@dataclass
class Comparison:
    """Attributes:
        baseline: baseline mixture. mixtures: row order (baseline first, then by name).
        columns: ``(benchmark, metric)`` columns, sorted. cells: one row per (mixture,
            benchmark, metric): ``mean``, ``std``, ``n_runs``, ``diff`` (None without a
            baseline value), ``values`` (each run's value, in recording order).
        digests: current digest per mixture. stale_runs: runs of earlier builds per mixture.
        params: recipe parameters per mixture.
    """

    baseline: str
    mixtures: list[str]
    columns: list[tuple[str, str]]
    cells: pl.DataFrame
    digests: dict[str, str] = field(default_factory=dict)
    stale_runs: dict[str, int] = field(default_factory=dict)
    params: dict[str, dict] = field(default_factory=dict)

    def cell(self, mixture: str, benchmark: str, metric: str) -> dict | None:
        hit = self.cells.filter((pl.col("mixture") == mixture) & (pl.col("benchmark") == benchmark)
                                & (pl.col("metric") == metric))
        return hit.row(0, named=True) if hit.height else None


def recipe_params(store: Store, mixture: str) -> dict:
    """The recipe parameters a comparison row shows, from the mixture's manifest."""
    m = store.read_json(layout.mixture_manifest(mixture))
    r = m.get("recipe", {})
    srcs = [s.get("name") if not s.get("wds") else f"{s.get('name')}={s.get('wds')}"
            for s in r.get("sources") or []] or [r.get("source")]
    out = {"sources": ",".join(str(s) for s in srcs)}
    for k in ("ratio", "deciles", "decile_weights", "cluster_weights", "total", "total_tokens",
              "seed", "replacement", "min_answer_tokens"):
        v = r.get(k)
        if v not in (None, {}, [], False, 0) or k == "seed":
            out[k] = v
    out["samples"] = len(m.get("samples", []))
    if store.exists(layout.mixture_lineage(mixture)):  # upstream curation settings at build
        lineage = store.read_json(layout.mixture_lineage(mixture)).get("upstream") or {}
        out.update(lineage.get("settings") or {})
    return out


def compare(store: Store, cfg: CompareConfig) -> Comparison:
    """The comparison of every mixture with recorded results of its current build.

    Raises:
        ValueError: the baseline has no results for its current build.
    """
    df = read_results(store)
    cur = df.filter(pl.col("current") & pl.col("primary"))
    if cur.filter(pl.col("mixture") == cfg.baseline).height == 0:
        have = sorted(set(cur["mixture"].to_list()))
        raise ValueError(f"baseline {cfg.baseline!r} has no eval results for its current build "
                         f"(mixtures with results: {have or 'none'}); mm-assets eval record "
                         f"--mixture {cfg.baseline} --results FILE")
    cells = (cur.group_by("mixture", "mixture_digest", "benchmark", "metric", maintain_order=True)
             .agg(mean=pl.col("value").mean(), std=pl.col("value").std(),
                  n_runs=pl.col("file_id").n_unique(), values=pl.col("value")))
    base = (cells.filter(pl.col("mixture") == cfg.baseline)
            .select("benchmark", "metric", base=pl.col("mean")))
    cells = (cells.join(base, on=["benchmark", "metric"], how="left")
             .with_columns(diff=pl.col("mean") - pl.col("base")).drop("base")
             .sort("mixture", "benchmark", "metric"))
    built = built_mixtures(store)
    stale = (df.filter(~pl.col("current")).group_by("mixture")
             .agg(pl.col("file_id").n_unique().alias("n")))
    stale_runs = dict(zip(stale["mixture"].to_list(), stale["n"].to_list()))
    # a built mixture whose results are all stale is shown (with its stale runs, no cells)
    names = sorted((set(cells["mixture"].to_list()) | (set(stale_runs) & set(built)))
                   - {cfg.baseline})
    mixtures = [cfg.baseline, *names]
    columns = sorted(set(zip(cells["benchmark"].to_list(), cells["metric"].to_list())))
    return Comparison(cfg.baseline, mixtures, columns, cells,
                      {m: built[m] for m in mixtures if m in built},
                      {m: int(stale_runs.get(m, 0)) for m in mixtures},
                      {m: recipe_params(store, m) for m in mixtures})


def fmt(v: float | None, signed: bool = False) -> str:
    if v is None:
        return "-"
    return f"{v:+.4g}" if signed else f"{v:.4g}"


def col_label(col: tuple[str, str]) -> str:
    return f"{col[0]} ({col[1]})"


def table_rows(c: Comparison) -> list[dict[str, str]]:
    """One dict per mixture: ``mixture``, ``digest``, then per column ``mean (n=runs,
    diff)``, ``stale runs``, ``recipe``: what the text, markdown and HTML renderings show."""
    rows = []
    for m in c.mixtures:
        row = {"mixture": m + (" (baseline)" if m == c.baseline else ""),
               "digest": c.digests.get(m, "")[:12]}
        for col in c.columns:
            x = c.cell(m, *col)
            row[col_label(col)] = ("-" if x is None else f"{fmt(x['mean'])} (n={x['n_runs']}"
                                   + ("" if m == c.baseline else f", {fmt(x['diff'], True)}")
                                   + ")")
        row["stale runs"] = str(c.stale_runs.get(m, 0))
        row["recipe"] = "; ".join(f"{k}={v}" for k, v in c.params.get(m, {}).items())
        rows.append(row)
    return rows


def render_text(c: Comparison) -> str:
    rows = table_rows(c)
    head = list(rows[0])
    widths = {h: max(len(h), *(len(r[h]) for r in rows)) for h in head if h != "recipe"}
    lines = [(f"eval results: {len(c.mixtures)} mixture(s) x {len(c.columns)} benchmark(s); "
              f"mean of each benchmark's primary metric over the runs of the current build "
              f"(n), difference to baseline {c.baseline}"),
             "  ".join(h.ljust(widths[h]) for h in widths)]
    lines += ["  ".join(r[h].ljust(widths[h]) for h in widths) for r in rows]
    lines.append("recipes:")
    lines += [f"  {r['mixture']}: {r['recipe']}" for r in rows]
    return "\n".join(lines) + "\n"


def render_markdown(c: Comparison) -> str:
    rows = [{k: v for k, v in r.items() if k != "recipe"} for r in table_rows(c)]
    head = list(rows[0])
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(r[h] for h in head) + " |" for r in rows]
    return "\n".join(out) + "\n"


def render_html(c: Comparison, root: str, plots: dict[str, bytes]) -> str:
    """A self-contained page: the table, the recipes, one bar plot per benchmark."""
    rows = table_rows(c)
    head = list(rows[0])
    esc = html.escape
    table = ("<table><tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>"
             + "".join("<tr>" + "".join(f"<td>{esc(r[h])}</td>" for h in head) + "</tr>"
                       for r in rows) + "</table>")
    figs = "".join(f"<h3>{esc(t)}</h3><img alt='{esc(t)}' src='data:image/png;base64,"
                   f"{base64.b64encode(p).decode()}'>" for t, p in plots.items())
    return ("<!doctype html><html><head><meta charset='utf-8'><title>ablations</title><style>"
            "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;font-size:13px;text-align:left}"
            "img{width:1000px;max-width:100%}</style></head><body>"
            f"<h1>Ablations: mixtures x benchmarks</h1><p>root {esc(root)}; baseline "
            f"<b>{esc(c.baseline)}</b>. Each cell: mean of the benchmark's primary metric over "
            "the eval runs of the mixture's current build, the number of runs (n) and the "
            "difference to the baseline. Runs of earlier builds (stale digests) are counted, "
            f"never averaged in.</p>{table}<h2>Per benchmark</h2>{figs}</body></html>")
