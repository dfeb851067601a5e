"""Registered external image pools: name, WebDataset prefixes, shards, partition keys.

A pool is one or more prefixes (a local folder or any fsspec URL: ``s3://bucket/datacomp``)
holding WebDataset ``.tar`` shards of image + caption samples, DataComp / LAION
(img2dataset) style: per sample ``{key}.jpg|jpeg|png|webp``, ``{key}.txt`` (the caption)
and/or ``{key}.json`` (metadata; its ``caption`` or ``text`` field is used when there is no
``.txt``). ``mm-assets pool add NAME PREFIX...`` writes ``pools/{NAME}.yaml``::

    name: datacomp_small
    prefixes: [s3://bucket/datacomp/shards]

Shards are listed live from the prefixes (the registration holds no shard list, so a new
shard under a registered prefix is picked up by the new-data sensor without a write). A shard
is named by its file stem (``00000042.tar`` -> ``00000042``); its Dagster partition of
``pool_shards`` is ``{NAME}__{stem}`` (:func:`partition_key`). Stems must be unique across a
pool's prefixes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import fsspec
import yaml

from mm_assets.core import layout
from mm_assets.core.storage import Store

SEP = "__"
SHARD_SUFFIX = ".tar"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_STEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class PoolError(ValueError):
    """A pool registration or shard reference that cannot be used (message names it)."""


def check_name(name: str) -> str:
    """``name`` if it is a valid pool name (letters, digits, ``_``, ``-``; no ``__``).

    Raises:
        PoolError: otherwise.
    """
    if not _NAME.match(name) or SEP in name:
        raise PoolError(f"bad pool name {name!r}: letters, digits, '_' and '-', starting with "
                        f"a letter or digit, without {SEP!r}")
    return name


def partition_key(pool: str, stem: str) -> str:
    """Dagster partition key of one pool shard: ``{pool}__{stem}``."""
    return f"{pool}{SEP}{stem}"


def split_partition_key(key: str) -> tuple[str, str]:
    """``(pool, stem)`` of a ``pool_shards`` partition key.

    Raises:
        PoolError: the key has no ``__``.
    """
    pool, sep, stem = key.partition(SEP)
    if not sep or not pool or not stem:
        raise PoolError(f"bad pool shard partition {key!r}: expected POOL{SEP}STEM")
    return pool, stem


@dataclass(frozen=True, slots=True)
class PoolSpec:
    """One registered pool.

    Attributes:
        name: pool name (see :func:`check_name`).
        prefixes: fsspec URLs / local folders of its ``.tar`` shards (listed non-recursively).
    """

    name: str
    prefixes: tuple[str, ...]

    def __post_init__(self) -> None:
        check_name(self.name)
        if not self.prefixes:
            raise PoolError(f"pool {self.name!r} has no prefix")

    def to_yaml(self) -> bytes:
        return yaml.safe_dump({"name": self.name, "prefixes": list(self.prefixes)},
                              sort_keys=False).encode()

    def shards(self) -> dict[str, str]:
        """``{stem: url}`` of every ``.tar`` shard under the prefixes, sorted by stem.

        Raises:
            PoolError: a prefix does not exist, a stem is not a valid partition name, or two
                prefixes hold the same stem.
        """
        out: dict[str, str] = {}
        for prefix in self.prefixes:
            for stem, url in list_shards(prefix).items():
                if stem in out:
                    raise PoolError(f"pool {self.name!r}: shard {stem!r} is in two prefixes "
                                    f"({out[stem]} and {url}); stems must be unique")
                out[stem] = url
        return dict(sorted(out.items()))


def list_shards(prefix: str) -> dict[str, str]:
    """``{stem: url}`` of the ``.tar`` files directly under ``prefix`` (one listing).

    Raises:
        PoolError: the prefix does not exist, or a shard's stem has characters a partition
            key cannot hold.
    """
    fs, base = fsspec.core.url_to_fs(prefix)
    fs.invalidate_cache()
    try:
        entries = fs.ls(base, detail=False)
    except FileNotFoundError as e:
        raise PoolError(f"pool prefix {prefix} does not exist") from e
    out = {}
    for path in entries:
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if not name.endswith(SHARD_SUFFIX) or name.startswith(".") or ".tmp-" in name:
            continue
        stem = name[: -len(SHARD_SUFFIX)]
        if not _STEM.match(stem):
            raise PoolError(f"pool shard {prefix}/{name}: its stem {stem!r} must be letters, "
                            "digits, '_', '-' or '.'")
        out[stem] = f"{prefix.rstrip('/')}/{name}"
    return out


def add_pool(store: Store, name: str, prefixes: list[str]) -> tuple[PoolSpec, dict[str, str]]:
    """Register (or extend) pool ``name`` with ``prefixes``: writes ``pools/{name}.yaml``.

    Adding a name again adds the new prefixes to the registration (idempotent for the same
    ones). Local prefixes are stored as absolute paths.

    Returns:
        The registration and its shards ``{stem: url}``.

    Raises:
        PoolError: bad name, missing prefix, no shard at all, or a stem in two prefixes
            (nothing is written then).
    """
    check_name(name)
    fixed = [_absolute(p) for p in prefixes]
    old = load_pool(store, name).prefixes if store.exists(layout.pool_spec(name)) else ()
    spec = PoolSpec(name, tuple(dict.fromkeys([*old, *fixed])))
    shards = spec.shards()
    if not shards:
        raise PoolError(f"pool {name!r}: no {SHARD_SUFFIX} shard under {list(spec.prefixes)}")
    store.write_bytes(layout.pool_spec(name), spec.to_yaml())
    return spec, shards


def _absolute(prefix: str) -> str:
    if "://" in prefix:
        return prefix.rstrip("/")
    import os

    return os.path.abspath(prefix)


def load_pool(store: Store, name: str) -> PoolSpec:
    """The registration of pool ``name``.

    Raises:
        PoolError: no such pool, or a malformed registration.
    """
    rel = layout.pool_spec(name)
    if not store.exists(rel):
        raise PoolError(f"no pool {name!r} under {store.url(layout.POOLS)} (known: "
                        f"{pool_names(store)}): register it with `mm-assets pool add`")
    raw = yaml.safe_load(store.read_bytes(rel)) or {}
    if not isinstance(raw, dict) or not isinstance(raw.get("prefixes"), list):
        raise PoolError(f"{store.url(rel)}: expected a mapping with a 'prefixes' list")
    return PoolSpec(str(raw.get("name", name)), tuple(str(p) for p in raw["prefixes"]))


def pool_names(store: Store) -> list[str]:
    """Names of the registered pools, sorted."""
    return layout.shard_ids(store, layout.POOLS, layout.POOL_SPEC_SUFFIX)


def shard_url(store: Store, pool: str, stem: str) -> str:
    """URL of one registered pool shard.

    Raises:
        PoolError: unknown pool, or no such shard under its prefixes.
    """
    spec = load_pool(store, pool)
    for prefix in spec.prefixes:  # one existence check per prefix, no listing
        url = f"{prefix.rstrip('/')}/{stem}{SHARD_SUFFIX}"
        fs, path = fsspec.core.url_to_fs(url)
        if fs.exists(path):
            return url
    raise PoolError(f"pool {pool!r} has no shard {stem!r} under {list(spec.prefixes)}")


def all_partition_keys(store: Store) -> list[str]:
    """``pool_shards`` partition keys of every shard of every registered pool."""
    return [partition_key(p, s) for p in pool_names(store) for s in load_pool(store, p).shards()]


def parse_pool_spec(spec: str, known: list[str]) -> list[str]:
    """``pool_shards`` keys from ``NAME__stem`` keys, globs (``dc__0000*``, ``dc__*``), pool
    names (every shard of that pool) or ``all``, comma-separated, checked against ``known``.

    Raises:
        PoolError: a part matches no known pool shard (the message names the pools).
    """
    import fnmatch

    if spec.strip() in ("", "all", "*"):
        return list(known)
    wanted: list[str] = []
    for part in (p.strip() for p in spec.split(",") if p.strip()):
        pattern = part if SEP in part or any(c in part for c in "*?[") else f"{part}{SEP}*"
        hits = fnmatch.filter(known, pattern)
        if not hits:
            pools = sorted({k.split(SEP, 1)[0] for k in known})
            raise PoolError(f"unknown pool shard {part!r}: no registered pool shard matches "
                            f"(pools: {', '.join(pools) or 'none'}; keys are NAME{SEP}STEM, "
                            f"e.g. {known[0] if known else f'dc{SEP}00000000'})")
        wanted.extend(hits)
    return list(dict.fromkeys(wanted))
