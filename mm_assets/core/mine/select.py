"""Seeded selection of pool images per corpus cluster (the global mining step, no Dagster).

Reads only the committed ``pool_assign`` tables of the recipe's pools (the columns it needs),
the corpus hash tables, the corpus (key, cluster) table and, for the candidates it keeps, their
rows of the pool vectors (``np.load(mmap_mode="r")``); never an image.

Algorithm, in rounds (usually one):

1. Stream the pool tables one at a time. A row assigned to a cluster the recipe does not
   consider is removed (``cluster_not_considered``); in a considered cluster it is a
   *candidate* of that cluster; the filters reject it with a reason (``low_sim``,
   ``low_margin``, ``caption_length``). Each surviving row gets the priority
   ``xxh3_64("{seed}:{key}")`` and only the ``need × oversample + 16`` rows of lowest
   priority per cluster are kept (a bounded top-k, trimmed after every table): a uniform
   seeded sample without replacement, independent of table order.
2. Kept rows are checked for the caption language (``caption_language``; CLD2 is costly, so
   only rows that could be taken are checked), then tested against the corpus (exact,
   perceptual, semantic:
   :mod:`.select_dups`) and against each other and the images taken in earlier rounds.
3. In priority order, a row is taken unless its cluster is full or it duplicates the corpus
   or an image already taken (the reason recorded: ``dup_corpus_exact`` …
   ``dup_mined_cosine``); rows after the cluster filled are ``not_needed``.
4. A cluster still short whose top-k was full gets another round over the rows of higher
   priority; a cluster whose eligible rows are exhausted reports its shortfall.

Per cluster: candidates = taken + rejected (per reason) + not_needed, checked.

Memory: bounded by the targets, not the pool: per kept row ~200 bytes of table plus D × 4
bytes of vector (so (Σ need) × oversample × (200 + 4D) bytes; 10k wanted at D = 1280 and
oversample 2: ~100 MB), one pool table at a time, plus the corpus state of
:mod:`.select_dups` (~40 bytes per corpus image). Per pool sample streamed: 0 bytes of state.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import xxhash

from mm_assets.core import layout, schemas
from mm_assets.core.commits import committed
from mm_assets.core.mine import select_dups as dups
from mm_assets.core.mine.pool_shard import read_assign_table
from mm_assets.core.mine.recipe import MiningRecipe, targets
from mm_assets.core.mine.select_filters import apply_filters, language_filter
from mm_assets.core.records import StageCounts
from mm_assets.core.storage import Store

POOL_STAGE = "pool_assign"
READ = schemas.subset(schemas.POOL_ASSIGN, "key", "pool", "shard", "wds_key", "caption",
                      "bytes_hash", "pixel_hash", "phash", "phash_flip", "row", "cluster",
                      "sim", "cluster2", "sim2", "span_start", "span_end")
FILTER_REASONS = ("low_sim", "low_margin", "caption_length", "caption_language")
DUP_REASONS = ("dup_corpus_exact", "dup_corpus_phash", "dup_corpus_cosine",
               "dup_mined_exact", "dup_mined_phash", "dup_mined_cosine")


_MIN = int(np.iinfo(np.int64).min)


class MiningError(ValueError):
    """The mining inputs are missing or inconsistent (message says what to materialize)."""


@dataclass(frozen=True, slots=True)
class SelectConfig:
    """Settings of the selection (not of the recipe: they change memory and time, never the
    images chosen).

    Attributes:
        oversample: rows kept per missing image and round (> 0; more: fewer rounds, more
            memory).
        max_rounds: stop after this many rounds (the rest is reported as ``round_limit``).
    """

    oversample: float = 2.0
    max_rounds: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.oversample, bool) or not isinstance(self.oversample, (int, float)) \
                or self.oversample <= 0:
            raise ValueError(f"oversample: a number > 0, got {self.oversample!r}")
        if not isinstance(self.max_rounds, int) or self.max_rounds < 1:
            raise ValueError(f"max_rounds: an integer >= 1, got {self.max_rounds!r}")


@dataclass(slots=True)
class ClusterTally:
    """One cluster's accounting: ``candidates = taken + Σ rejected + not_needed``."""

    wanted: int
    candidates: int = 0
    taken: int = 0
    rejected: Counter = field(default_factory=Counter)
    not_needed: int = 0

    @property
    def shortfall(self) -> int:
        return max(0, self.wanted - self.taken)

    def reconciles(self) -> bool:
        return self.candidates == self.taken + sum(self.rejected.values()) + self.not_needed

    def as_dict(self) -> dict:
        return {"wanted": self.wanted, "candidates": self.candidates, "taken": self.taken,
                "rejected": dict(sorted(self.rejected.items())), "not_needed": self.not_needed,
                "shortfall": self.shortfall}


@dataclass(slots=True)
class Selection:
    """The result: the taken rows (the :data:`READ` columns plus ``prio``, the seeded priority
    as an order-preserving int64; ordered by cluster then priority), per-cluster tallies, the
    stage counts over every pool row read, the number of rounds and the largest number of rows
    kept at once."""

    rows: pl.DataFrame
    tallies: dict[int, ClusterTally]
    counts: StageCounts
    rounds: int
    peak_kept: int


def priority(keys: list[str], seed: int) -> np.ndarray:
    """(N,) uint64 xxh3-64 of ``"{seed}:{key}"``: the seeded selection order."""
    return np.fromiter((xxhash.xxh3_64_intdigest(f"{seed}:{k}".encode()) for k in keys), np.uint64,
                       len(keys))


def pool_tables(store: Store, pools: tuple[str, ...]) -> list[tuple[str, str]]:
    """``(pool, stem)`` of every committed ``pool_assign`` shard of ``pools``, sorted.

    Raises:
        MiningError: a pool is not registered, has no committed shard, or has shards assigned
            against other centroids than the current clusters (stale: their cluster ids
            would mean other clusters).
    """
    from mm_assets.core.mine.pool import pool_names, split_partition_key
    from mm_assets.core.mine.pool_shard import centroids_digest, stale_shards

    have = [split_partition_key(k) for k in committed(store, POOL_STAGE)]
    registered = set(pool_names(store))
    out = []
    now = centroids_digest(store)  # hashed once for every pool
    for p in pools:
        if p not in registered:
            raise MiningError(f"pools: pool {p!r} is not registered (known: "
                              f"{sorted(registered) or 'none'}): `mm-assets pool add {p} PREFIX`")
        mine = sorted(s for q, s in have if q == p)
        if not mine:
            raise MiningError(f"pools: pool {p!r} has no committed pool_assign shard under "
                              f"{store.url(layout.POOLS)}: materialize pool_assign first")
        stale = stale_shards(store, p, now)
        if stale:
            raise MiningError(f"pools: {len(stale)} shard(s) of pool {p!r} were assigned against "
                              f"other centroids than the current clusters (e.g. {stale[:3]}): "
                              "re-assign them with `mm-assets run --select pool_assign "
                              "--missing`")
        out += [(p, s) for s in mine]
    return out


def corpus_sizes(store: Store) -> dict[int, int]:
    """Corpus images per image cluster (every centroid, empty clusters with 0)."""
    k = int(store.read_npy(layout.centroids("image")).shape[0])
    a = dups.corpus_clusters(store)["cluster"].value_counts()
    sizes = {c: 0 for c in range(k)}
    sizes.update({int(c): int(n) for c, n in a.iter_rows()})
    return sizes


def _scan(store, tables, r: MiningRecipe, tallies, need: dict[int, int], floor: dict[int, int],
          counts: StageCounts, first: bool, oversample: float) -> tuple[pl.DataFrame, dict]:
    """One pass over the pool tables: per active cluster the lowest-priority rows above its
    floor, at most k; also the number of eligible rows above the floor per cluster."""
    k = {c: math.ceil(n * oversample) + 16 for c, n in need.items() if n > 0}
    kt = pl.DataFrame({"cluster": list(k), "k": list(k.values()),
                       "floor": [floor.get(c, _MIN) for c in k]},
                      schema={"cluster": pl.Int32, "k": pl.Int64, "floor": pl.Int64})
    kept, seen = None, Counter()
    for pool, stem in tables:
        df = read_assign_table(store, pool, stem, READ)
        if first:
            counts.n_in += df.height
            inside = df["cluster"].is_in(list(tallies))
            counts.removed["cluster_not_considered"] += int((~inside).sum())
            df = df.filter(inside)
            for c, n in df["cluster"].value_counts().iter_rows():
                tallies[c].candidates += n
            idle = ~df["cluster"].is_in(list(k))
            for c, n in df.filter(idle)["cluster"].value_counts().iter_rows():
                tallies[c].not_needed += n  # a cluster that wants nothing
            df = df.filter(~idle)
        else:
            df = df.filter(df["cluster"].is_in(list(k)))
        df = apply_filters(df, r, tallies, first, language=False)
        df = df.with_columns(prio=pl.Series(priority(df["key"].to_list(), r.seed)
                                            .view(np.int64) ^ np.int64(-(1 << 63))))
        df = df.join(kt, on="cluster").filter(pl.col("prio") > pl.col("floor"))
        seen.update(dict(df["cluster"].value_counts().iter_rows()))
        kept = df if kept is None else pl.concat([kept, df])
        kept = _compact(kept.sort("prio").filter(
            pl.int_range(pl.len()).over("cluster") < pl.col("k")))
    empty = pl.DataFrame(schema={**READ, "prio": pl.Int64, "k": pl.Int64, "floor": pl.Int64})
    return (kept if kept is not None else empty).drop("k", "floor"), dict(seen)


def _compact(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with its strings copied: a filtered frame's string views keep the whole source
    table's buffers alive (polars), which would make the kept rows cost a pool table each."""
    text = [c for c, t in df.schema.items() if t == pl.Utf8]
    return df.with_columns([pl.col(c) + "" for c in text])


def select(store: Store, r: MiningRecipe, oversample: float = 2.0, max_rounds: int = 8
           ) -> Selection:
    """Select the pool images of recipe ``r`` (see the module doc).

    Args:
        oversample, max_rounds: see :class:`SelectConfig`.

    Raises:
        MiningError: a pool without committed shards, no corpus clusters or hashes.
        MiningRecipeError: the recipe names clusters the corpus does not have.
    """
    SelectConfig(oversample, max_rounds)
    tables = pool_tables(store, r.pools)
    if not store.exists(layout.CLUSTER_ASSIGNMENTS):
        raise MiningError("no corpus clusters: materialize clusters first")
    want = targets(r, corpus_sizes(store))
    tallies = {c: ClusterTally(w) for c, w in want.items()}
    counts = StageCounts()
    d = r.dedup
    hash_shards = committed(store, "image_hashes") if d.exact or d.phash_radius is not None \
        else []
    emb_shards = committed(store, "embeddings") if d.cosine is not None else []
    clusters = dups.corpus_clusters(store) if r.dedup.cosine is not None else None
    cents = dups.image_centroids(store) if r.dedup.cosine is not None else None
    taken = pl.DataFrame()
    taken_vecs = np.zeros((0, 0), np.float32)
    floor: dict[int, int] = {}
    need, rounds, peak, pending = dict(want), 0, 0, {}
    while any(n > 0 for n in need.values()) and rounds < max_rounds:
        kept, seen = _scan(store, tables, r, tallies, need, floor, counts, rounds == 0,
                           oversample)
        rounds += 1
        peak = max(peak, kept.height)
        per = {c: (n, mx) for c, n, mx in  # before the language filter: the round's floor
               kept.group_by("cluster").agg(pl.len(), pl.col("prio").max()).iter_rows()}
        kept = language_filter(kept, r, tallies)  # each kept row checked once
        vecs = _vectors(store, kept) if r.dedup.cosine is not None else \
            np.zeros((kept.height, 0), np.float32)
        flags = _corpus_flags(store, r, kept, vecs, hash_shards, emb_shards, clusters, cents)
        new, new_vecs = _greedy(r, kept, vecs, flags, taken, taken_vecs, tallies, need, cents)
        taken = new if taken.is_empty() else pl.concat([taken, new])
        taken_vecs = new_vecs if taken_vecs.size == 0 else np.vstack([taken_vecs, new_vecs])
        pending = {}
        for c in list(need):
            n, mx = per.get(c, (0, None))
            if need[c] > 0 and seen.get(c, 0) > n:
                floor[c] = int(mx)  # more rows above: another round
                pending[c] = seen[c] - n
            else:
                tallies[c].not_needed += seen.get(c, 0) - n
                need[c] = 0
    for c, n in pending.items() if rounds == max_rounds else ():
        tallies[c].rejected["round_limit"] += n  # never examined: max_rounds reached
    for t in tallies.values():
        for why, n in t.rejected.items():
            counts.removed[why] += n
        counts.removed["not_needed"] += t.not_needed
    counts.n_out = taken.height
    rows = taken.sort("cluster", "prio") if taken.height else taken
    return Selection(rows, tallies, counts, rounds, peak)


def _vectors(store: Store, kept: pl.DataFrame) -> np.ndarray:
    """(C, D) float32 vectors of the kept rows, read from the pool shards' ``.npy``."""
    if kept.height == 0:
        return np.zeros((0, 0), np.float32)
    out: np.ndarray | None = None
    for (pool, stem), part in kept.with_row_index("i").group_by("pool", "shard",
                                                                 maintain_order=True):
        x = dups.load_vectors(store, layout.pool_vectors(pool, stem))
        if out is None:
            out = np.zeros((kept.height, x.shape[1]), np.float32)
        rows = part["row"].to_numpy()
        order = np.argsort(rows)
        out[part["i"].to_numpy()[order]] = np.asarray(x[rows[order]], np.float32)
    return out


def _corpus_flags(store, r: MiningRecipe, kept, vecs, hash_shards, emb_shards, clusters,
                  cents) -> dict[str, np.ndarray]:
    n = kept.height
    flags = {w: np.zeros(n, bool) for w in ("dup_corpus_exact", "dup_corpus_phash",
                                            "dup_corpus_cosine")}
    if n == 0:
        return flags
    if r.dedup.exact:
        mine = set(kept["bytes_hash"].drop_nulls()) | set(kept["pixel_hash"].drop_nulls())
        hit = dups.corpus_exact(store, hash_shards, mine)
        flags["dup_corpus_exact"] = (kept["bytes_hash"].is_in(list(hit))
                                     | kept["pixel_hash"].is_in(list(hit))).to_numpy()
    if r.dedup.phash_radius is not None:
        ph, flip, valid = _phashes(kept)
        flags["dup_corpus_phash"] = dups.corpus_phash(store, hash_shards, ph, flip, valid,
                                                      r.dedup.phash_radius)
    if r.dedup.cosine is not None:
        flags["dup_corpus_cosine"] = dups.corpus_cosine(
            store, emb_shards, clusters, vecs,
            dups.nearest_clusters(vecs, cents, r.dedup.cosine_clusters), r.dedup.cosine)
    return flags


def _phashes(df: pl.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    valid = (df["phash"].is_not_null() & df["phash_flip"].is_not_null()).to_numpy()
    return (df["phash"].fill_null(0).to_numpy(), df["phash_flip"].fill_null(0).to_numpy(),
            valid)


def _greedy(r: MiningRecipe, kept: pl.DataFrame, vecs, flags, taken: pl.DataFrame,
            taken_vecs, tallies, need, cents) -> tuple[pl.DataFrame, np.ndarray]:
    """Take rows in priority order (see the module doc); returns the rows taken this round."""
    t = taken.height
    both = kept if t == 0 else pl.concat([taken, kept])
    allv = vecs if t == 0 else np.vstack([taken_vecs, vecs])
    partners: dict[str, dict[int, list[int]]] = {"dup_mined_phash": {}, "dup_mined_cosine": {}}
    if r.dedup.phash_radius is not None:
        pairs = dups.mined_pairs(*_phashes(both), r.dedup.phash_radius)
        for a, b in pairs:
            partners["dup_mined_phash"].setdefault(a, []).append(b)
            partners["dup_mined_phash"].setdefault(b, []).append(a)
    if r.dedup.cosine is not None and allv.size:
        near = dups.nearest_clusters(allv, cents, r.dedup.cosine_clusters)
        for a, b in dups.cosine_pairs(allv, near, r.dedup.cosine):
            partners["dup_mined_cosine"].setdefault(a, []).append(b)
            partners["dup_mined_cosine"].setdefault(b, []).append(a)
    accepted = set(range(t))
    hashes = (set(taken["bytes_hash"]) | set(taken["pixel_hash"])) - {None} if t else set()
    took: list[int] = []
    bh, px, cl = kept["bytes_hash"].to_list(), kept["pixel_hash"].to_list(), kept["cluster"]
    for i, c in enumerate(cl.to_list()):
        tally = tallies[c]
        if need[c] <= 0:
            tally.not_needed += 1
            continue
        why = next((w for w in DUP_REASONS[:3] if flags[w][i]), None)
        if why is None and r.dedup.exact and (bh[i] in hashes or px[i] in hashes):
            why = "dup_mined_exact"
        for w in ("dup_mined_phash", "dup_mined_cosine"):
            if why is None and any(p in accepted for p in partners[w].get(t + i, ())):
                why = w
        if why:
            tally.rejected[why] += 1
            continue
        accepted.add(t + i)
        hashes.update(h for h in (bh[i], px[i]) if h)
        took.append(i)
        tally.taken += 1
        need[c] -= 1
    sel = kept[took] if took else kept.clear()
    return sel, vecs[took] if took else np.zeros((0, vecs.shape[1] if vecs.ndim == 2 else 0),
                                                 np.float32)
