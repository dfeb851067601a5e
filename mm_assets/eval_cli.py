"""``mm-assets eval record|compare|digest``: evaluation results attached to the mixtures they
trained on (``mm_assets.core.evals``). Registered on the main app by :mod:`mm_assets.cli`."""

from __future__ import annotations

from pathlib import Path

import typer

from mm_assets.core import layout

eval_app = typer.Typer(no_args_is_help=True, help="Evaluation results of models trained on "
                       "mixtures: record them against the mixture's content digest, compare.")

RootOpt = typer.Option("", "--root", help="storage root URL (default $MM_ASSETS_ROOT)")
ResultsOpt = typer.Option(..., "--results", help="results file: lm-eval / lmms-eval results "
                          "JSON or VLMEvalKit score CSV (repeatable)")


def _fail(msg: str, code: int) -> None:
    typer.echo(f"error: {' '.join(msg.split())}", err=True)
    raise typer.Exit(code)


@eval_app.command("record")
def record(mixture: str = typer.Option(..., "--mixture", help="mixture (recipe) name"),
           results: list[str] = ResultsOpt,
           model_run: str = typer.Option("", "--model-run", help="training run id"),
           notes: str = typer.Option("", "--notes", help="free text"),
           digest: str = typer.Option("", "--digest", help="mixture digest the model trained "
                                      "on (>= 8 hex; refused when the mixture was rebuilt)"),
           model: str = typer.Option("", "--model", help="VLMEvalKit model name when the file "
                                     "name does not start with it"),
           root: str = RootOpt) -> None:
    """Record results files against the current build of a mixture (each file once).

    Exit 2: the mixture is not built or a file is in no supported format; exit 1: a file is
    stale (claims an earlier build); the other files are recorded either way."""
    from mm_assets.cli import _setup
    from mm_assets.core.evals.formats import ResultsFormatError
    from mm_assets.core.evals.record import MixtureNotBuilt, StaleResults, record_results
    from resources.storage import StorageResource

    _setup(root)
    store, code = StorageResource().store(), 0
    for path in results:
        url = path if "://" in path else str(Path(path).resolve())
        try:
            r = record_results(store, mixture, url, model_run=model_run, notes=notes,
                               digest=digest, model=model)
        except MixtureNotBuilt as e:
            _fail(str(e), 2)
        except (ResultsFormatError, FileNotFoundError) as e:
            typer.echo(f"error: {' '.join(str(e).split())}", err=True)
            code = max(code, 2)
            continue
        except StaleResults as e:
            typer.echo(f"error: {path}: {' '.join(str(e).split())}", err=True)
            code = max(code, 1)
            continue
        print(r.line())
    if code:
        raise typer.Exit(code)


@eval_app.command("compare")
def compare_cmd(baseline: str = typer.Option("baseline_raw", "--baseline",
                                             help="mixture the others are compared with"),
                out: str = typer.Option("", "--out", help="HTML file (default "
                                        f"{{root}}/{layout.ABLATIONS_HTML})"),
                root: str = RootOpt) -> None:
    """Mixtures x benchmarks against a baseline, as text and HTML with plots.

    Per cell: mean over the eval runs of each mixture's current build, runs, difference to the
    baseline; per row the recipe parameters; one bar plot per benchmark. Exit 2 when the
    baseline has no results or ``--out`` cannot be written (checked first)."""
    from mm_assets.cli import _setup
    from mm_assets.cli_paths import check_output_file
    from mm_assets.core.evals.compare import CompareConfig, compare, render_html, render_text
    from mm_assets.viz.evals import benchmark_plots
    from resources.storage import StorageResource

    _setup(root)
    try:
        if out:
            check_output_file(out, "--out")
    except (FileNotFoundError, PermissionError) as e:
        _fail(str(e), 2)
    store = StorageResource().store()
    try:
        c = compare(store, CompareConfig(baseline=baseline))
    except (ValueError, LookupError) as e:
        _fail(str(e), 2)
    print(render_text(c), end="")
    page = render_html(c, store.root, benchmark_plots(c)).encode()
    if out:
        Path(out).write_bytes(page)
    else:
        out = store.url(layout.ABLATIONS_HTML)
        store.write_bytes(layout.ABLATIONS_HTML, page)
    print(f"html report: {out}")


@eval_app.command("digest")
def digest_cmd(mixture: str = typer.Option(..., "--mixture", help="mixture (recipe) name"),
               root: str = RootOpt) -> None:
    """Print the content digest of the mixture's current build.

    Keep it with the training run; pass it back as ``record --digest``. Exit 2 when the
    mixture is not built."""
    from mm_assets.cli import _setup
    from mm_assets.core.evals.record import MixtureNotBuilt, mixture_digest
    from resources.storage import StorageResource

    _setup(root)
    try:
        print(mixture_digest(StorageResource().store(), mixture))
    except MixtureNotBuilt as e:
        _fail(str(e), 2)
