"""eval_results (one partition per mixture) and ablations (the comparison), group "eval"."""

from dagster import Failure, MaterializeResult, MetadataValue, asset

from mm_assets.config import dagster_config
from mm_assets.core import layout
from mm_assets.core.evals.compare import CompareConfig, compare, render_html, render_markdown
from mm_assets.core.evals.record import (
    RecordConfig,
    history,
    mixture_digest,
    read_results,
    record_results,
)
from mm_assets.partitions import recipes
from resources.storage import StorageResource

EvalResultsConfig = dagster_config(RecordConfig, "EvalResultsConfig")
AblationsConfig = dagster_config(CompareConfig, "AblationsConfig")


@asset(partitions_def=recipes, deps=["mixtures"], group_name="eval", kinds={"parquet"})
def eval_results(context, config: EvalResultsConfig, storage: StorageResource
                 ) -> MaterializeResult:
    """Evaluation results of the models trained on this mixture, recorded per file in
    ``evals/{mixture}/{digest}/{file}.parquet`` against the mixture's content digest
    (``mm_assets.core.evals.record``): the files in the run config are recorded (each once;
    a file claiming another build of the mixture is refused), then every recorded run of this
    mixture is shown, current build and history. Requested by ``eval_results_sensor`` for
    files dropped in ``incoming_evals/{mixture}/``; ``mm-assets eval record`` writes the same."""
    store, name, cfg = storage.store(), context.partition_key, config.core()
    current = mixture_digest(store, name)
    lines, refused = [], []
    for url in cfg.files:
        try:
            lines.append(record_results(store, name, url, model_run=cfg.model_run,
                                        notes=cfg.notes).line())
            context.log.info(lines[-1])
        except (ValueError, LookupError, OSError) as e:
            refused.append(f"{url}: {type(e).__name__}: {' '.join(str(e).split())}")
    df = read_results(store, [name])
    runs = history(df)
    n_cur = runs.filter(runs["current"]).height if runs.height else 0
    shown = (df.filter(df["current"] & df["primary"])
             .select("benchmark", "metric", "value", "model_run", "source_file")
             if df.height else df)
    meta = {"mixture_digest": current, "runs_current": n_cur,
            "runs_stale": runs.height - n_cur, "recorded_now": sum("recorded " in x for x in lines),
            "records": MetadataValue.md(_md(runs.drop("file_id") if runs.height else runs)),
            "primary_metrics": MetadataValue.md(_md(shown)),
            "folder": store.url(layout.evals_dir(name))}
    if refused:
        raise Failure(f"{len(refused)} of {len(cfg.files)} results file(s) not recorded: "
                      + "; ".join(refused), metadata=meta)
    return MaterializeResult(metadata=meta)


@asset(deps=["eval_results"], group_name="eval", kinds={"html"})
def ablations(context, config: AblationsConfig, storage: StorageResource) -> MaterializeResult:
    """Mixtures x benchmarks: the mean of each benchmark's primary metric over the eval runs
    of each mixture's current build, the number of runs and the difference to the baseline,
    with each mixture's recipe parameters; one bar plot per benchmark. Written to
    ``reports/ablations.html`` (same page as ``mm-assets eval compare``)."""
    from mm_assets.viz.evals import benchmark_plots
    from mm_assets.viz.plots import png_markdown

    store = storage.store()
    c = compare(store, config.core())
    plots = benchmark_plots(c)
    store.write_bytes(layout.ABLATIONS_HTML, render_html(c, store.root, plots).encode())
    meta = {"baseline": c.baseline, "mixtures": len(c.mixtures), "benchmarks": len(c.columns),
            "table": MetadataValue.md(render_markdown(c)),
            "report": store.url(layout.ABLATIONS_HTML)}
    for title, png in plots.items():
        meta[f"plot {title}"] = png_markdown(png)
    return MaterializeResult(metadata=meta)


def _md(df) -> str:
    if df.height == 0:
        return "(none)"
    head = "| " + " | ".join(df.columns) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join("| " + " | ".join(str(v) for v in r) + " |\n" for r in df.iter_rows())
