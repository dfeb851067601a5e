"""``mm-assets pool add|list``: external image pools (DataComp / LAION-style WebDataset) to mine
by corpus cluster (``mm_assets.core.mine``). Registered on the main app by :mod:`mm_assets.cli`."""

from __future__ import annotations

import typer

pool_app = typer.Typer(no_args_is_help=True, help="External image pools: register WebDataset "
                       "prefixes (one pool_shards partition per shard), list them.")

RootOpt = typer.Option("", "--root", help="storage root URL (default $MM_ASSETS_ROOT)")
PrefixesArg = typer.Argument(..., help="folder(s) or fsspec URL(s) of .tar shards (image "
                             "jpg/png/webp + txt or json caption)")


def _fail(msg: str, code: int) -> None:
    typer.echo(f"error: {' '.join(msg.split())}", err=True)
    raise typer.Exit(code)


@pool_app.command("add")
def add(name: str = typer.Argument(..., help="pool name (letters, digits, _ and -)"),
        prefixes: list[str] = PrefixesArg,
        root: str = RootOpt) -> None:
    """Register a pool (or add prefixes to it): writes {root}/pools/NAME.yaml and adds one
    pool_shards partition NAME__STEM per shard. Exit 2: bad name, missing prefix, no shard."""
    from mm_assets.assets.pool import register_pool_shards
    from mm_assets.cli import _setup
    from mm_assets.core.mine.pool import PoolError, add_pool
    from mm_assets.runner import get_instance
    from resources.storage import StorageResource

    _setup(root)
    storage = StorageResource()
    try:
        spec, shards = add_pool(storage.store(), name, prefixes)
    except PoolError as e:
        _fail(str(e), 2)
    keys = register_pool_shards(get_instance(), storage, [name])
    typer.echo(f"pool {name}: {len(shards)} shard(s) under {len(spec.prefixes)} prefix(es); "
               f"partitions {keys[0]} … {keys[-1]}")
    typer.echo("next: mm-assets run --select pool_assign (needs clusters)")


@pool_app.command("list")
def list_pools(root: str = RootOpt) -> None:
    """Per pool: prefixes, shards found now, shards assigned (committed), stale ones (assigned
    against older centroids), samples assigned and quarantined."""
    from mm_assets.cli import _setup
    from mm_assets.core.commits import read_commits
    from mm_assets.core.mine import STAGE
    from mm_assets.core.mine.pool import PoolError, load_pool, partition_key, pool_names
    from mm_assets.core.mine.pool_shard import stale_shards
    from resources.storage import StorageResource

    _setup(root)
    store = StorageResource().store()
    names = pool_names(store)
    if not names:
        typer.echo(f"no pool registered under {store.url('')} (mm-assets pool add NAME PREFIX)")
        return
    commits = read_commits(store, STAGE)
    for name in names:
        spec = load_pool(store, name)
        try:
            shards = spec.shards()
            found = str(len(shards))
        except PoolError as e:
            shards, found = {}, f"? ({e})"
        mine = {k: r for k, r in commits.items() if k.startswith(partition_key(name, ""))}
        n_out = sum(r["counts"]["n_out"] for r in mine.values())
        n_q = sum(sum(r["counts"]["quarantined"].values()) for r in mine.values())
        typer.echo(f"{name}: shards {found}, assigned {len(mine)}, stale "
                   f"{len(stale_shards(store, name))}, samples {n_out} (+{n_q} quarantined)")
        for p in spec.prefixes:
            typer.echo(f"  prefix {p}")


def split_pool_spec(spec: str, store) -> tuple[str, list[str] | None]:
    """``run --shards``: ``(corpus part, pool shard keys)``. Parts holding ``__`` (``dc__*``,
    ``dc__00000001``) name ``pool_assign`` partitions; the rest are corpus shards. ``None``:
    no pool part (``pool_assign`` runs every registered pool shard, as before).

    Raises:
        PoolError (a ValueError): a pool part matches no registered pool shard (exit 2).
    """
    from mm_assets.core.mine.pool import (
        SEP,
        PoolError,
        all_partition_keys,
        parse_pool_spec,
        pool_names,
    )

    parts = [p.strip() for p in spec.split(",") if p.strip()]
    pool = [p for p in parts if SEP in p]
    if not pool:
        return spec, None
    pools = set(pool_names(store))
    for p in pool:  # e.g. a SemDeDup range key: not chosen with --shards
        if p.split(SEP, 1)[0] not in pools and not any(c in p for c in "*?["):
            raise PoolError(
                f"--shards {p!r} is neither a corpus shard nor a shard of a registered pool "
                f"(pools: {', '.join(sorted(pools)) or 'none'}); SemDeDup range partitions "
                "are the plan's: `run --select semdedup_range` runs them all (`--missing`: "
                "those not yet scored), `backfill --select semdedup_range --shards KEY` one")
    keys = parse_pool_spec(",".join(pool), all_partition_keys(store))
    return ",".join(p for p in parts if SEP not in p), keys
