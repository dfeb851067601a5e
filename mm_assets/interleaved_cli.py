"""``mm-assets interleaved ingest|run``: interleaved documents (MINT-1T / OBELICS / mmc4) into
doc shards and through their assets (``mm_assets.assets.interleaved``). Registered on the main
app by :mod:`mm_assets.cli`."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from mm_assets.core.interleaved.readers import FORMATS
from mm_assets.interleaved_plan import DOC_ASSETS

interleaved_app = typer.Typer(no_args_is_help=True, help="Interleaved image-text documents: "
                              "ingest MINT-1T / OBELICS / mmc4 files into doc shards, then "
                              "hashes, repeated images, duplicates, quality, curated shards.")

RootOpt = typer.Option("", "--root", help="storage root URL (default $MM_ASSETS_ROOT)")
InputOpt = typer.Option(..., "--input", help="input file (repeatable)")
ASSETS = DOC_ASSETS  # in run order (mm_assets.interleaved_plan.DOC_LAYERS)


@interleaved_app.command("ingest")
def ingest(input: list[str] = InputOpt,
           format: str = typer.Option(..., "--format", help=" | ".join(FORMATS)),
           images: str = typer.Option(None, "--images", help="mmc4: folder of image_name files"),
           shard_size: int = typer.Option(1000, "--shard-size", help="documents per doc shard"),
           root: str = RootOpt) -> None:
    """Count each input's documents and write one manifest per doc shard (``doc_shards``
    partitions); an input already ingested is skipped. Exit 2 on a bad format or path."""
    from mm_assets.cli import _setup, _usage_error
    from mm_assets.core.interleaved.ingest import DocIngestConfig, plan_doc_ingest
    from mm_assets.partitions import doc_shards
    from mm_assets.runner import get_instance
    from resources.storage import StorageResource

    _setup(root)
    store = StorageResource().store()
    urls = [p if "://" in p else str(Path(p).resolve()) for p in input]
    img = images if not images or "://" in images else str(Path(images).resolve())
    try:
        summaries = plan_doc_ingest(store, format, urls, img,
                                    DocIngestConfig(shard_size=shard_size))
    except (ValueError, FileNotFoundError) as e:
        _usage_error(e)
    new = [sh for s in summaries for sh in s.shards]
    instance = get_instance()
    have = set(instance.get_dynamic_partitions(doc_shards.name))
    instance.add_dynamic_partitions(doc_shards.name, [s for s in new if s not in have])
    for s in summaries:
        print(s.line())
    print(f"{len(new)} new doc shard(s)" + (f": {', '.join(new)}" if new else ""))
    print(f"storage root: {store.root}")


@interleaved_app.command("run")
def run(select: str = typer.Option("", "--select", help=f"comma-separated, of {ASSETS}"),
        shards: str = typer.Option("all", "--shards", help="doc shards: 0-99, 3,5, 0000*, all"),
        missing: bool = typer.Option(False, "--missing", help="skip doc shards whose selected "
                                     "assets are all committed"),
        config: str = typer.Option("", "--config", help="YAML: {asset: {field: value}}"),
        root: str = RootOpt) -> None:
    """Materialize the interleaved assets in process (the document layers of ``mm-assets
    run``): per doc shard, then doc_repeats and doc_clusters, then docs_curated per doc shard.
    Exit 1 when a run fails (one line per failure)."""
    from mm_assets.cli import _asset_config, _exit_on_failure, _log_level, _setup, _usage_error
    from mm_assets.interleaved_plan import known_doc_shards
    from mm_assets.partitions import parse_shard_spec
    from mm_assets.runner import get_instance, run_graph
    from resources.storage import StorageResource

    _setup(root)
    instance = get_instance()
    try:
        keys = parse_shard_spec(shards, known_doc_shards(instance, StorageResource().store()))
        names = [s.strip() for s in select.split(",") if s.strip()] or ASSETS
        unknown = sorted(set(names) - set(ASSETS))
        if unknown:
            raise ValueError(f"unknown interleaved asset(s) {unknown}; known: {ASSETS}")
        if not keys:
            raise ValueError("no doc shards: run `mm-assets interleaved ingest` first")
        t0 = time.time()
        summary = run_graph(instance, select=names, doc_shards=keys, missing_only=missing,
                            run_config=_asset_config(config), log_level=_log_level(),
                            progress=lambda s: print(f"[{time.time() - t0:7.1f}s] {s}",
                                                     flush=True))
    except (ValueError, FileNotFoundError) as e:
        _usage_error(e)
    print(f"{summary.runs} runs, {len(summary.failed)} failed")
    _exit_on_failure(summary)
