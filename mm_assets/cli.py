"""``mm-assets`` command line: demo, ingest, run, report, status (backfill: ``backfill.py``)."""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path

import typer

from mm_assets.core import layout

DEBUG = {"on": False}  # set by --debug (anywhere on the command line)


def one_line(e: BaseException) -> str:
    """``Type: message`` on one line (white space folded), for a CLI error."""
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


class _App(typer.Typer):
    """The Typer app; an uncaught error prints one line (``error: Type: message``) and exits 1,
    unless ``--debug`` is given, which shows the traceback (and Dagster's step logs)."""

    def __call__(self, *args, **kwargs):
        argv = list(kwargs.pop("args", None) or sys.argv[1:])
        DEBUG["on"] = "--debug" in argv
        argv = [a for a in argv if a != "--debug"]
        try:
            return super().__call__(*args, args=argv, **kwargs)
        except Exception as e:
            if DEBUG["on"]:
                raise
            print(f"error: {one_line(e)} (--debug shows the traceback)", file=sys.stderr)
            sys.exit(1)


app = _App(add_completion=False, no_args_is_help=True,
           help="Curate multimodal instruction data as a Dagster asset graph. "
                "--debug (any position): tracebacks and Dagster step logs on errors.")

RootOpt = typer.Option("", "--root", help="storage root URL (default $MM_ASSETS_ROOT)")


def _setup(root: str) -> None:
    import logging

    warnings.filterwarnings("ignore")
    log = logging.getLogger("mm_assets.progress")  # long steps: a line every ~10 s
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("           %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if root:
        os.environ["MM_ASSETS_ROOT"] = root


def _ingest(inputs: list[str], images: str | None, shard_size: int, wds_key: str = "first_dot",
            report=None, force: bool = False):
    """Ingest and register the new shards; ``report`` gets one line per input. ``force``:
    re-ingest inputs ingested before (:mod:`mm_assets.reingest`), retiring unused shards."""
    from mm_assets.core.ingest.plan import IngestConfig, ingest_inputs
    from mm_assets.core.ingest.recover import IngestInterrupted, recorded_shards
    from mm_assets.reingest import downstream
    from mm_assets.runner import get_instance
    from resources.storage import StorageResource

    store = StorageResource().store()
    urls = [p if "://" in p else str(Path(p).resolve()) for p in inputs]
    img = images if not images or "://" in images else str(Path(images).resolve())

    def register(summaries) -> None:  # also shards an interrupted ingest never registered
        instance = get_instance()
        have = set(instance.get_dynamic_partitions("shards"))
        for sh in (sh for s in summaries for sh in s.retired if sh in have):
            instance.delete_dynamic_partition("shards", sh)
        instance.add_dynamic_partitions("shards", [s for s in recorded_shards(store)
                                                   if s not in have])

    try:
        summaries = ingest_inputs(store, urls, img, IngestConfig(shard_size=shard_size,
                                                                 wds_key=wds_key), force,
                                  downstream() if force else None, report)
    except IngestInterrupted:  # what was ingested before Ctrl-C stays, registered
        register([])
        raise
    register(summaries)
    new = [sh for s in summaries for sh in s.shards]
    for s in summaries if report else []:
        report(s.line())
    return store, new


DEMO_CONFIG = Path(__file__).parent / "demo" / "run_config.yaml"


def _usage_error(e: Exception) -> None:
    """A bad argument or input: one line and exit 2 (with ``--debug``: the traceback)."""
    if DEBUG["on"]:
        raise e
    typer.echo(f"error: {' '.join(str(e).split())}", err=True)
    raise typer.Exit(2) from e


def demo_run_config() -> dict:
    """The run config ``mm-assets demo`` passes: only ``mm_assets/demo/run_config.yaml``."""
    return _asset_config(str(DEMO_CONFIG))


def _log_level() -> str:
    """Dagster console log level: step logs and tracebacks only with ``--debug``."""
    return "INFO" if DEBUG["on"] else "CRITICAL"


def _asset_config(path: str, known: list[str] | None = None) -> dict:
    """``{asset: {field: value}}`` from a YAML file as a Dagster run config.

    Raises:
        FileNotFoundError: no such file; ValueError: not YAML, not that shape, or an asset
            not in ``known`` (each message names ``--config`` and the file).
    """
    if not path:
        return {}
    from mm_assets.cli_paths import read_yaml_mapping

    data = read_yaml_mapping(path, "--config")
    if not all(isinstance(v, dict) for v in data.values()):
        raise ValueError(f"--config {path}: expected a mapping of asset name to a mapping of "
                         "fields")
    bad = sorted(a for a in data if known is not None and a not in known)
    if bad:
        raise ValueError(f"--config {path}: unknown asset {', '.join(map(repr, bad))}; known: "
                         f"{', '.join(sorted(known))}")
    for asset, fields in data.items():  # a mistyped field: exit 2 before any run
        allowed = _config_fields(asset)
        if allowed is None:  # not an asset: said above when `known` is given
            continue
        wrong = sorted(f for f in fields if f not in allowed)
        if wrong:
            raise ValueError(f"--config {path}: {asset} has no field "
                             f"{', '.join(map(repr, wrong))}; its fields: "
                             f"{', '.join(sorted(allowed)) or 'none (it takes no config)'}")
    return {"ops": {a: {"config": fields} for a, fields in data.items()}}


def _config_fields(asset: str) -> set[str] | None:
    """The config fields the asset's op accepts (from its Dagster config schema); None for a
    name that is no asset."""
    from mm_assets.definitions import ALL_ASSETS

    for a in ALL_ASSETS:
        if getattr(a, "key", None) is not None and a.key.to_user_string() == asset:
            schema = a.op.config_schema
            return set(getattr(schema.config_type, "fields", None) or {}) if schema else set()
    return None


def _print_summary(summary, store) -> None:
    from mm_assets.runner import ALL, REPORTS

    cols = ["n_in", "n_out", "n_removed", "n_quarantined"]
    print(f"\n{'asset':<18}" + "".join(f"{c:>14}" for c in cols) + "  reasons")
    for a in [a for a in ALL if a not in REPORTS]:
        c = summary.counts.get(a)
        if not c:
            continue
        reasons = ", ".join(f"{k}={int(v)}" for k, v in sorted(c.items())
                            if k.startswith(("removed_", "quarantined_")))
        print(f"{a:<18}" + "".join(f"{int(c.get(k, 0)):>14}" for k in cols) + f"  {reasons}")
    print(f"\n{summary.runs} runs; storage root: {store.root}")


@app.command()
def ingest(input: list[str] = typer.Option(..., "--input", help="JSON/JSONL/WebDataset file"),
           images: str = typer.Option(None, "--images", help="image root folder"),
           root: str = RootOpt, shard_size: int = typer.Option(1000, "--shard-size"),
           wds_key: str = typer.Option("first-dot", "--wds-key",
                                       help="WebDataset key: first-dot (webdataset) | last-dot"),
           force: bool = typer.Option(False, "--force", help="re-ingest inputs ingested before "
                                      "(e.g. with the wrong --images): replace their shards, "
                                      "withdraw what depends on them (run --missing redoes it)")
           ) -> None:
    """Stream JSON (array, JSONL, object, records keyed by id, wrapper) or WebDataset tars
    into shard manifests + partitions; prints each input's shape and records."""
    _setup(root)
    from mm_assets.cli_paths import check_input_dir

    try:
        if images:
            check_input_dir(images, "--images")
        store, new = _ingest(input, images, shard_size, wds_key.replace("-", "_"), print, force)
    except (ValueError, FileNotFoundError, PermissionError) as e:
        _usage_error(e)
    except KeyboardInterrupt as e:  # core.ingest.recover.IngestInterrupted says what was done
        typer.echo("STOPPED: " + (e.line() if hasattr(e, "line") else "ingest interrupted "
                                  "outside planning; run the same command again (it skips "
                                  "inputs already ingested)"), err=True)
        raise typer.Exit(130) from None
    print(f"{len(new)} new shard(s)" + (f": {', '.join(new)}" if new else ""))
    print(f"storage root: {store.root}")


@app.command()
def run(select: str = typer.Option("", "--select", help="comma-separated assets (default all)"),
        shards: str = typer.Option("all", "--shards", help="0-99, 3,5, 0000*, all; pool "
                                   "shards of pool_assign: NAME__STEM, NAME__*"),
        recipes: str = typer.Option("", "--recipes",
                                    help="mixtures and mined partitions: names or globs "
                                    "(ppl_*) of shipped examples or the root's mixture / "
                                    "mining recipes; all = every one (default: the root's "
                                    f"own, {{root}}/{layout.RECIPES}/*.yaml, "
                                    f"{{root}}/{layout.MINING}/*.yaml)"),
        missing: bool = typer.Option(False, "--missing", help="skip materialized partitions"),
        config: str = typer.Option("", "--config", help="YAML: {asset: {field: value}}"),
        batch: int = typer.Option(1, "--batch", min=1,
                                  help="shards per run in per-shard layers (their worker "
                                  "processes share a run's shards; 1 = a run per shard)"),
        root: str = RootOpt) -> None:
    """Materialize assets in process (no webserver needed), with progress."""
    _setup(root)
    try:  # a bad --config file fails before anything runs
        _asset_config(config)
    except (ValueError, FileNotFoundError, PermissionError) as e:
        _usage_error(e)
    from mm_assets.core.mix.registry import all_recipes, root_recipes
    from mm_assets.definitions import ALL_ASSETS
    from mm_assets.partitions import parse_recipe_spec, parse_shard_spec
    from mm_assets.runner import get_instance, register_recipes, run_graph
    from resources.storage import StorageResource

    try:
        run_config = _asset_config(config, [a.node_def.name for a in ALL_ASSETS])
    except (ValueError, FileNotFoundError, PermissionError) as e:
        _usage_error(e)
    instance = get_instance()
    try:
        from mm_assets.mine_cli import split_recipe_spec
        from mm_assets.pool_cli import split_pool_spec  # NAME__stem: pool_assign partitions

        shards, pools = split_pool_spec(shards, StorageResource().store())
        keys = (parse_shard_spec(shards, instance.get_dynamic_partitions("shards"))
                if shards or pools is None else [])
        names = [s.strip() for s in select.split(",") if s.strip()] or None
        recipes, minings = split_recipe_spec(recipes, names, StorageResource().store())
        chosen = None
        if names is None or "mixtures" in names:
            store = StorageResource().store()
            chosen = register_recipes(instance, StorageResource(), parse_recipe_spec(
                recipes, sorted(all_recipes(store)), root_recipes(store)))
        t0 = time.time()
        summary = run_graph(instance, select=names, shards=keys, recipes=chosen,
                            missing_only=missing, log_level=_log_level(),
                            run_config=run_config, batch=batch, minings=minings,
                            pool_shards=pools,
                            progress=lambda s: print(f"[{time.time() - t0:7.1f}s] {s}", flush=True))
    except ValueError as e:
        _usage_error(e)
    _print_summary(summary, StorageResource().store())
    _exit_on_failure(summary)


def _exit_on_failure(summary) -> None:
    """Exit 130 after an interrupt (the stop line says what finished), 1 after a failure."""
    if summary.interrupted is not None:
        typer.echo("STOPPED: " + summary.stop_line(), err=True)
        raise typer.Exit(130)
    for line in summary.failed:  # one line per failed asset partition
        typer.echo("FAILED: " + line, err=True)
    if summary.not_started:  # the layers after a failed one
        rest = summary.not_started
        typer.echo(f"NOT STARTED (a layer before them failed): {len(rest)} run(s): "
                   + ", ".join(rest[:8]) + (" ..." if len(rest) > 8 else ""), err=True)
    if summary.failed:
        raise typer.Exit(1)


@app.command()
def demo(root: str = RootOpt,
         shard_size: int = typer.Option(64, "--shard-size")) -> None:
    """The main job: generate the embedded default input and materialize the whole graph."""
    from mm_assets.core.mix.registry import shipped
    from mm_assets.demo.data import generate
    from mm_assets.runner import get_instance, register_recipes, run_graph
    from resources.storage import StorageResource, resolve_root

    _setup(root or os.environ.get("MM_ASSETS_ROOT", "") or ".mm_assets/root")
    t0 = time.time()
    src = generate(Path(".mm_assets/demo_input").resolve())
    store, new = _ingest([str(src)], str(src.parent / "images"), shard_size)
    print(f"input: {src} -> {len(new)} new shard(s); root {resolve_root()}")
    from mm_assets.demo.docs import ingest_demo_docs  # interleaved documents too (issue 16)

    docs = ingest_demo_docs(src.parent, store, get_instance())
    print(f"documents: {src.parent / 'docs.jsonl'} -> {len(docs)} new doc shard(s)")
    run_config = demo_run_config()
    import yaml

    print(f"run config (mm_assets/demo/{DEMO_CONFIG.name}; launchpad form; all else default): "
          + yaml.safe_dump(run_config, default_flow_style=True).strip())
    instance = get_instance()
    names = register_recipes(instance, StorageResource(), sorted(shipped()))  # named: examples
    summary = run_graph(instance, run_config=run_config, recipes=names, log_level=_log_level(),
                        progress=lambda s: print(f"[{time.time() - t0:7.1f}s] {s}", flush=True))
    _print_summary(summary, store)
    if not summary.failed:
        print()
        _report(store)
    for name in store.ls(layout.MIXTURES):
        print(f"mixture {name}: {store.url(layout.mixture_dir(name))}/*.tar")
    print(f"dagster home: {os.environ['DAGSTER_HOME']}  ({time.time() - t0:.0f} s)")
    _exit_on_failure(summary)


def _report(store, out: str = "") -> bool:
    """Print the corpus funnel of ``store`` and write its HTML report; True when it reconciles."""
    from mm_assets.core.report.funnel import build_funnel
    from mm_assets.core.report.render import render_html, render_text
    from mm_assets.viz.plots import funnel_png

    f = build_funnel(store)
    print(render_text(f, store.root), end="")
    page = render_html(f, store.root, {"the funnel as bars": funnel_png(f)}).encode()
    if out:
        Path(out).write_bytes(page)
    else:
        out = store.url(layout.FUNNEL_HTML)
        store.write_bytes(layout.FUNNEL_HTML, page)
    print(f"html report: {out}")
    return f.ok


@app.command()
def report(root: str = RootOpt,
           out: str = typer.Option("", "--out", help="HTML file (default "
                                   f"{{root}}/{layout.FUNNEL_HTML})")) -> None:
    """The corpus funnel: every stage's figures summed over all partitions, reconciled.

    Exit 1 when a reconciliation fails, 2 when the root holds no materialized shard or
    ``--out`` cannot be written (checked before the funnel is built)."""
    _setup(root)
    from mm_assets.cli_paths import check_output_file
    from resources.storage import StorageResource

    try:
        if out:
            check_output_file(out, "--out")
    except (FileNotFoundError, PermissionError) as e:
        _usage_error(e)
    try:
        ok = _report(StorageResource().store(), out)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from e
    if not ok:
        typer.echo("FAILED: some figures do not reconcile (see checks)", err=True)
        raise typer.Exit(1)


@app.command()
def status(root: str = RootOpt) -> None:
    """Per asset: materialized / missing / failed partitions of the root's shards and recipes
    (runs as recorded in $DAGSTER_HOME); exits 1 when any partition's latest run failed."""
    _setup(root)
    from mm_assets.runner import ALL, get_instance
    from mm_assets.status import asset_statuses
    from resources.storage import StorageResource

    store = StorageResource().store()
    rows = asset_statuses(get_instance(), store, ALL)
    print(f"root: {store.root}   instance: {os.environ['DAGSTER_HOME']}")
    print(f"{'asset':<18}{'materialized':>14}{'missing':>10}{'failed':>8}")
    for r in rows:
        print(f"{r.asset:<18}{r.done:>14}{r.total - r.done:>10}{r.failed:>8}"
              + (f"  {', '.join(r.failed_keys)}" if r.failed_keys else ""))
    failed = [f"{r.asset}[{k}]" for r in rows for k in r.failed_keys]
    if failed:
        typer.echo(f"FAILED: {sum(r.failed for r in rows)} partition(s): {', '.join(failed)}",
                   err=True)
        raise typer.Exit(1)


@app.command()
def sample(asset: str = typer.Option(..., "--asset", help="raw_shards, curated, semdedup, "
                                     "clusters, ppl_deciles, exact_duplicates, quarantine, "
                                     "text_quality"),
           out: str = typer.Option(..., "--out", help="output folder (index.html, thumbs/)"),
           view: str = typer.Option("", "--view", help="all|kept|unique|removed|cluster|decile|"
                                    "exact-groups|near-groups|flagged (default: the asset's)"),
           reason: str = typer.Option(None, "--reason", help="removal or quarantine reason"),
           cluster: int = typer.Option(None, "--cluster"),
           space: str = typer.Option(None, "--space", help="image|text (cluster ids per space)"),
           decile: int = typer.Option(None, "--decile", help="perplexity decile 0-9 (-1 unscored)"),
           source: str = typer.Option(None, "--source", help="input source name"),
           flag: str = typer.Option(None, "--flag", help="text-quality flag (view flagged)"),
           n: int = typer.Option(None, "--n", help="samples per section (groups for group views)"),
           seed: int = typer.Option(0, "--seed"),
           parquet: bool = typer.Option(False, "--parquet", help="also write samples.parquet"),
           recipe: str = typer.Option(None, "--recipe", help="mining recipe (--asset mined)"),
           root: str = RootOpt) -> None:
    """Write a static HTML gallery (opens offline) of an asset's samples and their decisions."""
    _setup(root)
    from mm_assets.browse.gallery import build_gallery
    from mm_assets.browse.select import spec_for_asset
    from mm_assets.cli_paths import check_output_dir
    from mm_assets.core.storage import Store
    from resources.storage import StorageResource

    try:
        check_output_dir(out, "--out")
        if "mined" in (asset, view):  # per cluster: corpus sheet beside mined images
            from mm_assets.browse.mined import cli_sample_mined
            return cli_sample_mined(out, recipe, cluster, n, seed, parquet)
        spec = spec_for_asset(asset, view or None, n=n, seed=seed, reason=reason,
                              cluster=cluster, space=space, decile=decile, source=source,
                              flag=flag)
        dest = Store(out if "://" in out else str(Path(out).resolve()))
        res = build_gallery(StorageResource().store(), spec, dest, parquet=parquet,
                            allow_empty=False)  # filters matching nothing: exit 2
    except (ValueError, FileNotFoundError, PermissionError) as e:
        _usage_error(e)
    print(f"{res.cards} samples in {res.sections} section(s), {res.shards_read} raw shard(s) "
          f"read -> {res.index}" + (f" + {res.parquet}" if res.parquet else ""))


@app.command()
def synth(specs: str = typer.Option("", "--specs",
                                    help="synthetic specs: names or globs of shipped examples "
                                    "or the root's own; all = every one (default: the root's "
                                    f"own, {{root}}/{layout.SYNTHETIC}/*.yaml)"),
          root: str = RootOpt) -> None:
    """Render synthetic-data specs and run the corpus checks on them (assets `synthetic`
    and `synthetic_checked`, one partition per spec)."""
    _setup(root)
    from mm_assets.core.synth.spec import all_specs, root_specs
    from mm_assets.partitions import parse_recipe_spec
    from mm_assets.runner import get_instance, run_graph
    from resources.storage import StorageResource

    instance, store = get_instance(), StorageResource().store()
    try:
        names = parse_recipe_spec(specs, sorted(all_specs(store)), root_specs(store))
        t0 = time.time()
        summary = run_graph(instance, select=["synthetic", "synthetic_checked"], specs=names,
                            log_level=_log_level(),
                            progress=lambda s: print(f"[{time.time() - t0:7.1f}s] {s}",
                                                     flush=True))
    except ValueError as e:
        _usage_error(ValueError(str(e).replace("unknown recipe", "unknown synthetic spec")))
    _print_summary(summary, store)
    _exit_on_failure(summary)


def main() -> None:  # pragma: no cover - console entry
    sys.exit(app())


@app.command()
def backfill(select: str = typer.Option(..., "--select", help="comma-separated per-shard assets"),
             shards: str = typer.Option(..., "--shards", help="0-99, 3,5, 0000*, all; "
                                        "pool_assign: NAME__STEM, NAME__*, NAME; mined and "
                                        "mixtures: recipe names or globs"),
             missing: bool = typer.Option(False, "--missing", help="only shards not materialized"),
             dry_run: bool = typer.Option(False, "--dry-run", help="print keys, launch nothing"),
             wait: bool = typer.Option(False, "--wait", help="follow it with a progress bar"),
             url: str = typer.Option("", "--url", help="webserver (default $MM_ASSETS_URL or "
                                     "http://127.0.0.1:3000)")) -> None:
    """Launch a Dagster asset backfill over shards through the webserver (see backfill.py)."""
    from mm_assets.backfill import run_backfill

    raise typer.Exit(run_backfill(select, shards, missing=missing, dry_run=dry_run, wait=wait,
                                  url=url))


def _register_eval() -> None:
    from mm_assets.eval_cli import eval_app

    app.add_typer(eval_app, name="eval")


_register_eval()
from mm_assets.interleaved_cli import interleaved_app  # the interleaved commands

app.add_typer(interleaved_app, name="interleaved")
from mm_assets.pool_cli import pool_app  # the external image pool commands

app.add_typer(pool_app, name="pool")
from mm_assets.mine_cli import mine  # mining pools by cluster (asset mined)

app.command()(mine)
