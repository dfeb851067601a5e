"""Per-shard work over the shards of one run in worker processes (every core busy).

``map_shards(fn, shards, args, workers)`` calls ``fn(shard, *args)`` for each shard and yields
the results in shard order. With more than one worker and more than one shard the calls run
in a ``ProcessPoolExecutor`` whose processes come from a *forkserver* (a single-threaded
server that imported ``fn``'s module once and forks each worker from it): workers start
fast, never inherit the threads of the caller (polars, torch and Dagster all run threads, and
``fork`` of a threaded process can deadlock), and the caller's fsspec defaults
(``fsspec.config.conf``: S3 endpoint, credentials) are copied into every worker.

``fn`` and ``args`` must be picklable: a module-level function and plain values (a
:class:`~mm_assets.core.storage.Store`, frozen config dataclasses). Each shard is one task;
one failing shard raises in the caller (the other running tasks finish first).

Memory: one copy of ``fn``'s working set per worker (a shard's samples, typically tens of
MB); results travel back pickled, so they should be small (counts and metadata).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import repeat
from typing import Any, TypeVar

R = TypeVar("R")


def default_workers() -> int:
    """Cores this process may run on (``os.sched_getaffinity``), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int, n_tasks: int) -> int:
    """Processes to use: ``workers`` (0 = :func:`default_workers`) capped at ``n_tasks``.

    Raises:
        ValueError: ``workers`` < 0.
    """
    if workers < 0:
        raise ValueError(f"workers must be >= 0 (0 = one per core), got {workers}")
    return max(1, min(workers or default_workers(), n_tasks))


def _init_worker(fsspec_conf: dict[str, Any]) -> None:
    import fsspec

    fsspec.config.conf.update(fsspec_conf)


def map_shards(fn: Callable[..., R], shards: Sequence[str], args: tuple = (),
               workers: int = 0) -> Iterator[R]:
    """Yield ``fn(shard, *args)`` for every shard, in order, on up to ``workers`` processes.

    Args:
        fn: module-level function ``(shard, *args) -> result``.
        shards: partition keys.
        args: extra picklable arguments, the same for every shard.
        workers: worker processes; 0 = one per core; 1 (or a single shard) = in this process.

    Raises:
        ValueError: ``workers`` < 0. Whatever ``fn`` raises is re-raised here.
    """
    n = resolve_workers(workers, len(shards))
    if n == 1:
        for shard in shards:
            yield fn(shard, *args)
        return
    import fsspec

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([fn.__module__])
    with ProcessPoolExecutor(n, mp_context=ctx, initializer=_init_worker,
                             initargs=(dict(fsspec.config.conf),)) as pool:
        yield from pool.map(fn, shards, *(repeat(a) for a in args))
