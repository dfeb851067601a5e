"""``mm-assets mine [--recipes NAMES|all]``: materialize ``mined`` for mining recipes (one
partition each) and print per cluster wanted / candidates / taken / rejected / shortfall.
Registered on the main app by :mod:`mm_assets.cli`."""

from __future__ import annotations

import time

import typer

from mm_assets.core import layout


def cluster_table(manifest: dict) -> str:
    """The manifest's clusters that wanted or took images, as a fixed-width text table."""
    lines = [(f"{'cluster':>7} {'wanted':>6} {'cand.':>7} {'taken':>6} {'short':>5} "
              f"{'not needed':>10}  rejected")]
    for c, t in manifest["clusters"].items():
        if t["wanted"] or t["taken"]:
            rej = ", ".join(f"{k} {v}" for k, v in t["rejected"].items()) or "-"
            lines.append(f"{c:>7} {t['wanted']:>6} {t['candidates']:>7} {t['taken']:>6} "
                         f"{t['shortfall']:>5} {t['not_needed']:>10}  {rej}")
    tot = manifest["totals"]
    lines.append(f"{'total':>7} {tot['wanted']:>6} {tot['candidates']:>7} {tot['taken']:>6} "
                 f"{tot['shortfall']:>5} {tot['not_needed']:>10}")
    return "\n".join(lines)


def mine(recipes: str = typer.Option("", "--recipes",
                                     help="mining recipes: names or globs of shipped examples or "
                                     "the root's own; all = every one (default: the root's own, "
                                     f"{{root}}/{layout.MINING}/*.yaml)"),
         root: str = typer.Option("", "--root", help="storage root URL")) -> None:
    """Mine registered pools by corpus cluster (asset `mined`, one partition per recipe); needs
    `clusters` and `pool_assign` materialized. Exit 1: a recipe failed; 2: unknown recipe."""
    from mm_assets.cli import _exit_on_failure, _log_level, _print_summary, _setup, _usage_error
    from mm_assets.core.mine.recipe import (
        all_mining_recipes,
        load_mining_recipe,
        root_mining_recipes,
    )
    from mm_assets.partitions import parse_recipe_spec
    from mm_assets.runner import get_instance, run_graph
    from resources.storage import StorageResource

    _setup(root)
    instance, store = get_instance(), StorageResource().store()
    try:
        names = parse_recipe_spec(recipes, sorted(all_mining_recipes(store)),
                                  root_mining_recipes(store))
        for name in names:  # a bad recipe fails here, before any run (exit 2)
            load_mining_recipe(store, name)
        t0 = time.time()
        summary = run_graph(instance, select=["mined"], minings=names, log_level=_log_level(),
                            progress=lambda s: print(f"[{time.time() - t0:7.1f}s] {s}",
                                                     flush=True))
    except ValueError as e:
        _usage_error(ValueError(str(e).replace("unknown recipe", "unknown mining recipe")))
    _print_summary(summary, store)
    for name in names:  # tables of this call's finished recipes only (not a stale build's)
        if f"mined [{name}]" in summary.finished and store.exists(layout.mined_manifest(name)):
            print(f"\nmined[{name}]\n" + cluster_table(store.read_json(
                layout.mined_manifest(name))))
    _exit_on_failure(summary)


def split_recipe_spec(spec: str, select: list[str] | None, store
                      ) -> tuple[str, list[str] | None]:
    """``run --recipes`` for both per-recipe assets: ``(spec for mixtures, mining recipes)``.

    With ``mined`` selected, the names and globs apply to mining recipes too: each part must
    match a mixture recipe or a mining recipe (with only ``mined`` selected: a mining recipe;
    ``all``: every one of both). With every asset (no ``--select``) only parts that are a
    mining recipe's exact name go to ``mined``; ``all``, globs and the rest keep their meaning
    for mixtures (so ``run --recipes all`` does not start the shipped mining examples). Mining
    recipes ``None``: no mining recipe named (the root's own are built, as ``mm-assets
    mine``); the mixture part keeps the rest (empty: the root's own mixture recipes).

    Raises:
        ValueError: a part matches no recipe of the selected assets (exit 2).
    """
    import fnmatch

    from mm_assets.core.mine.recipe import all_mining_recipes
    from mm_assets.core.mix.registry import all_recipes
    from mm_assets.partitions import parse_recipe_spec

    if not spec.strip() or (select is not None and "mined" not in select):
        return spec, None
    mining = sorted(all_mining_recipes(store))
    if select is not None and "mixtures" not in select:
        try:
            return "", parse_recipe_spec(spec, mining)
        except ValueError as e:
            raise ValueError(str(e).replace("unknown recipe", "unknown mining recipe")) from e
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if select is None:
        named = [p for p in parts if p in mining]
        return ",".join(p for p in parts if p not in mining), named or None
    if spec.strip() in ("all", "*"):
        return spec, mining
    mixtures, mix, mine_ = sorted(all_recipes(store)), [], []
    for part in parts:
        m, x = fnmatch.filter(mining, part), fnmatch.filter(mixtures, part)
        if not m and not x:
            raise ValueError(f"unknown recipe {part!r}: no mixture recipe ({mixtures}) and no "
                             f"mining recipe ({mining}) matches")
        mine_ += m
        if x:
            mix.append(part)
    return ",".join(mix), list(dict.fromkeys(mine_)) or None
