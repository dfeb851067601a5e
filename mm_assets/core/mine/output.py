"""Writing a mining recipe's output: LLaVA samples, the selection table and the manifest.

Each mined pool image becomes one canonical sample (:class:`~mm_assets.core.records.Sample`)::

    key:            {pool}-{stem}-{wds_key}  (characters outside [A-Za-z0-9_-] become '-')
    conversations:  [{"from": "human", "value": "<image>\\n" + recipe.prompt},
                     {"from": "gpt", "value": caption}]
    images:         [the pool image's bytes, unchanged]   image_exts: [its extension]
    source:         pool:{pool}
    metadata:       {pool, pool_shard, pool_key, cluster, sim, mining_recipe}

so a caption-only pool yields "describe the image" instruction data; the mixture source
``{mined: RECIPE}`` reads these shards. Shards ``mined/{recipe}/{i:05d}.tar`` are written in
pool-shard order (each pool shard read once, streaming; only taken members are kept, one
sample in memory at a time), ``selection.parquet`` lists the taken rows in that order and
``manifest.json`` gives per cluster wanted / candidates / taken / rejected per reason /
not_needed / shortfall.
"""

from __future__ import annotations

import re
import tarfile
from collections import Counter
from collections.abc import Iterator

import polars as pl

from mm_assets.core import layout, schemas
from mm_assets.core.dedup.hashing import bytes_hash
from mm_assets.core.mine.recipe import MiningRecipe
from mm_assets.core.mine.select import MiningError, Selection
from mm_assets.core.records import ASSISTANT, HUMAN, IMAGE_TOKEN, Sample
from mm_assets.core.shards import iter_tar_groups, write_shards
from mm_assets.core.storage import Store

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")  # as pool_assign reads them (first present)
_BAD = re.compile(r"[^A-Za-z0-9_-]")


def out_key(pool: str, stem: str, wds_key: str) -> str:
    """The mined sample's key: ``{pool}-{stem}-{wds_key}`` made WebDataset-safe."""
    return _BAD.sub("-", f"{pool}-{stem}-{wds_key}")


def conversation(prompt: str, caption: str) -> list[dict[str, str]]:
    """The two turns of a mined sample (see the module doc)."""
    return [{"from": HUMAN, "value": f"{IMAGE_TOKEN}\n{prompt}"},
            {"from": ASSISTANT, "value": caption}]


def _shard_url(store: Store, pool: str, stem: str) -> str:
    from mm_assets.core.mine.pool import shard_url

    return shard_url(store, pool, stem)


def mined_samples(store: Store, r: MiningRecipe, rows: pl.DataFrame) -> Iterator[Sample]:
    """The taken rows as samples, pool shard by pool shard (rows must be in that order).

    Raises:
        MiningError: a taken sample is missing from its pool shard or its image bytes changed
            since ``pool_assign`` (bytes hash differs): re-materialize pool_assign.
    """
    import fsspec

    for (pool, stem), part in rows.group_by("pool", "shard", maintain_order=True):
        want = {w: row for w, row in zip(part["wds_key"], part.iter_rows(named=True),
                                         strict=True)}
        url = _shard_url(store, pool, stem)
        with fsspec.open(url, "rb") as f:
            groups = iter_tar_groups(f)
            while want:  # stop at the last wanted sample: a damaged tail is not read
                try:
                    wds_key, parts = next(groups)
                except StopIteration:
                    break
                except (tarfile.ReadError, EOFError, OSError) as e:
                    raise MiningError(f"pool shard {url} cannot be read past its first samples "
                                      f"({type(e).__name__}: {e}); {len(want)} selected "
                                      f"sample(s) not reached, e.g. {sorted(want)[:3]}: "
                                      f"re-materialize pool_assign[{pool}__{stem}]") from e
                row = want.pop(wds_key, None)
                if row is None:
                    continue
                ext = next((e for e in IMAGE_EXTS if e in parts), None)
                if ext is None or bytes_hash(parts[ext]) != row["bytes_hash"]:
                    raise MiningError(f"pool shard {url}: sample {wds_key!r} changed since "
                                      f"pool_assign (image bytes differ): re-materialize "
                                      f"pool_assign[{pool}__{stem}]")
                yield Sample(row["out_key"], conversation(r.prompt, row["caption"]),
                             [parts[ext]], [ext], f"pool:{pool}",
                             {"pool": pool, "pool_shard": stem, "pool_key": row["key"],
                              "cluster": row["cluster"], "sim": round(row["sim"], 6),
                              "mining_recipe": r.name})
        if want:
            raise MiningError(f"pool shard {url}: {len(want)} selected sample(s) missing, e.g. "
                              f"{sorted(want)[:3]}: re-materialize pool_assign[{pool}__{stem}]")


def selection_table(sel: Selection) -> pl.DataFrame:
    """The taken rows in output order (pool, shard, row), schema MINED_SELECTION.

    Raises:
        MiningError: two taken samples map to the same output key.
    """
    rows = sel.rows
    if rows.height == 0:
        return pl.DataFrame(schema=schemas.MINED_SELECTION)
    rows = rows.sort("pool", "shard", "row")  # keys from the sorted rows, not the unsorted
    rows = rows.with_columns(out_key=pl.Series(
        [out_key(p, s, w) for p, s, w in zip(rows["pool"], rows["shard"], rows["wds_key"],
                                              strict=True)], dtype=pl.Utf8))
    if rows["out_key"].n_unique() != rows.height:
        raise MiningError("two selected pool samples map to one output key "
                          f"(e.g. {rows.filter(rows['out_key'].is_duplicated())['key'][:2]})")
    return rows.select(list(schemas.MINED_SELECTION)).cast(schemas.MINED_SELECTION)


def write_mined(store: Store, r: MiningRecipe, sel: Selection) -> tuple[list[str], dict]:
    """Write shards, ``selection.parquet`` and ``manifest.json`` of recipe ``r``.

    Returns:
        ``(shard paths, manifest)``.

    Raises:
        MiningError: see :func:`mined_samples` and :func:`selection_table`.
    """
    table = selection_table(sel)
    paths = write_shards(store, layout.mined_dir(r.name), mined_samples(store, r, table),
                         r.shard_size)
    store.write_table(layout.mined_selection(r.name), table, schemas.MINED_SELECTION)
    manifest = manifest_of(r, sel, paths)
    store.write_json(layout.mined_manifest(r.name), manifest)
    return paths, manifest


def manifest_of(r: MiningRecipe, sel: Selection, paths: list[str]) -> dict:
    """The manifest: recipe settings, per-cluster tallies, totals, shards."""
    t = sel.tallies
    return {
        "recipe": r.name, "pools": list(r.pools), "seed": r.seed, "mode": r.mode,
        "min_sim": r.min_sim, "min_margin": r.min_margin,
        "dedup": {"exact": r.dedup.exact, "phash_radius": r.dedup.phash_radius,
                  "cosine": r.dedup.cosine},
        "conversation": conversation(r.prompt, "{caption}"),
        "clusters": {str(c): v.as_dict() for c, v in sorted(t.items())},
        "totals": {"wanted": sum(v.wanted for v in t.values()),
                   "candidates": sum(v.candidates for v in t.values()),
                   "taken": sum(v.taken for v in t.values()),
                   "not_needed": sum(v.not_needed for v in t.values()),
                   "shortfall": sum(v.shortfall for v in t.values()),
                   "rejected": dict(sorted(sum((v.rejected for v in t.values()),
                                               start=Counter()).items()))},
        "rounds": sel.rounds, "peak_kept_rows": sel.peak_kept, "shards": paths,
        "reconciles": all(v.reconciles() for v in t.values()) and sel.counts.reconciles()}
