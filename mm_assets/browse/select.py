"""Which samples a gallery shows: seeded, bounded-memory selection over the decision tables.

A view streams one *driver* table (e.g. ``semdedup/scores.parquet`` for ``unique``) in record
batches, keeps the rows that pass the filters, and keeps per section the ``n`` rows with the
smallest ``hash(key, seed)`` (bottom-k sampling: a uniform sample without replacement that does
not depend on file order; the same seed and polars version give the same sample). Memory is
``n × sections`` rows plus one batch; a filter whose column the driver lacks (``--cluster`` on
the ``removed`` view, say) is a key set read from its own table, O(matching keys). The
``flagged`` view and the ``flag`` filter read only the per-shard ``text_quality`` tables
(:mod:`mm_assets.browse.flags`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal, get_args

import polars as pl

from mm_assets.browse import _layout as layout
from mm_assets.browse.flags import FLAG_RANK, flag_tables, flagged_frames
from mm_assets.browse.tables import SectionTopK, iter_frames, key_tables, one_table, rows_for_keys
from mm_assets.core.quality.text_flags import FLAGS
from mm_assets.core.storage import Store

View = Literal["all", "kept", "unique", "removed", "cluster", "decile", "exact-groups",
               "near-groups", "flagged", "synthetic"]
VIEWS: tuple[str, ...] = get_args(View)
ASSET_VIEWS = {"raw_shards": "all", "image_hashes": "all", "curated": "kept",
               "semdedup": "unique", "embeddings": "cluster", "clusters": "cluster",
               "ppl_scores": "decile", "ppl_deciles": "decile",
               "exact_duplicates": "exact-groups", "quarantine": "removed",
               "text_quality": "flagged", "synthetic": "synthetic"}
DEFAULT_N = {"all": 48, "kept": 48, "unique": 48, "removed": 12, "cluster": 12, "decile": 4,
             "exact-groups": 12, "near-groups": 12, "flagged": 12, "synthetic": 24}
MAX_MEMBERS = 8  # samples shown per duplicate group


@dataclass(frozen=True, slots=True)
class SampleSpec:
    """What a gallery shows.

    Attributes:
        view: see :data:`VIEWS` (README "Looking at the data"); ``synthetic`` shows the
            rendered samples of the ``synthetic`` asset, one section per spec, with the answer
            overlaid on a second thumbnail (``source`` = one spec).
        n: samples per section (groups for the group views; for ``decile``: lowest and highest
            each); None = :data:`DEFAULT_N` of the view.
        seed: sampling seed.
        reason, cluster, space, decile, source, flag: filters (None = any). ``space`` is
            ``image`` or ``text`` (cluster ids are per space); ``flag`` a text-quality flag
            (:data:`~mm_assets.core.quality.text_flags.FLAGS`).
        shards: only samples of these raw shards (None = all).
        max_sections: sections shown at most (clusters, reasons, groups are sections).
    """

    view: View = "all"
    n: int | None = None
    seed: int = 0
    reason: str | None = None
    cluster: int | None = None
    space: str | None = None
    decile: int | None = None
    source: str | None = None
    flag: str | None = None
    shards: tuple[str, ...] | None = None
    max_sections: int = 64

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ValueError(f"view must be one of {', '.join(VIEWS)}; got {self.view!r}")
        if self.n is not None and self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.space not in (None, "image", "text"):
            raise ValueError(f"space must be image or text, got {self.space!r}")
        if self.decile is not None and not -1 <= self.decile <= 9:
            raise ValueError(f"decile must be in -1..9, got {self.decile}")
        if self.flag is not None and self.flag not in FLAGS:
            raise ValueError(f"flag must be one of {', '.join(FLAGS)}; got {self.flag!r}")

    @property
    def per_section(self) -> int:
        return self.n or DEFAULT_N[self.view]

    def describe(self) -> str:
        """``view=removed reason=semdedup seed=0 n=12`` (what the gallery header shows)."""
        parts = [f"view={self.view}"] + [f"{k}={getattr(self, k)}" for k in (
            "reason", "cluster", "space", "decile", "source", "flag")
            if getattr(self, k) is not None]
        return " ".join(parts + [f"seed={self.seed}", f"n={self.per_section}"])


def spec_for_asset(asset: str, view: str | None = None, **kw) -> SampleSpec:
    """The spec of ``mm-assets sample --asset ASSET [--view V] ...``: the asset's default view
    (:data:`ASSET_VIEWS`; ``removed`` when a reason is given, ``flagged`` when a flag is).

    Raises:
        ValueError: unknown asset or view (message lists the known ones).
    """
    if asset not in ASSET_VIEWS:
        raise ValueError(f"no sample view for asset {asset!r}; known: {', '.join(ASSET_VIEWS)}")
    if not view and kw.get("flag"):
        view = "flagged"
    if not view:
        view = "removed" if kw.get("reason") and asset not in ("exact_duplicates",) else \
            ASSET_VIEWS[asset]
    return SampleSpec(view=view, **kw)


@dataclass(slots=True)
class Selection:
    """Chosen rows of a view.

    Attributes:
        rows: ``key, section, section_rank, shard`` (null when not known yet) + view columns.
        counts: candidates per section (samples, or groups for the group views).
        sections_left_out: sections beyond ``max_sections``.
    """

    rows: pl.DataFrame
    counts: dict[str, int] = field(default_factory=dict)
    sections_left_out: int = 0


def _order(seed: int, col: str = "key") -> pl.Expr:
    return pl.col(col).hash(seed).cast(pl.Float64).alias("_order")


def _label(df: pl.DataFrame, section: pl.Expr | str, rank: pl.Expr | float, seed: int
           ) -> pl.DataFrame:
    sec = pl.lit(section) if isinstance(section, str) else section
    rk = pl.lit(float(rank)) if isinstance(rank, (int, float)) else rank
    return df.with_columns(sec.alias("section"), rk.cast(pl.Float64).alias("section_rank"),
                           _order(seed))


def _removed_frames(store: Store, spec: SampleSpec) -> Iterator[pl.DataFrame]:
    """Removed (curated decisions; or semdedup/exact tables when asked by reason or before
    curated exists) and quarantined samples, with ``reason`` and ``section``."""
    r = spec.reason
    decisions = layout.curated_decision_files(store)
    if r == "semdedup" or (r is None and not decisions):
        for df in iter_frames(store, one_table(layout.semdedup_scores()), ["key", "duplicate"]):
            yield df.filter("duplicate").select("key", pl.lit("semdedup").alias("reason"))
    if r == "exact_duplicate" or (r is None and not decisions):
        for df in iter_frames(store, one_table(layout.exact_groups()), ["key", "action"]):
            yield df.filter(pl.col("action") == "remove").select(
                "key", pl.lit("exact_duplicate").alias("reason"))
    if r not in ("semdedup", "exact_duplicate"):
        for df in iter_frames(store, decisions, ["key", "status", "reason"]):
            df = df.filter(pl.col("status") == "removed")
            yield df.filter(pl.col("reason") == r) if r else df
    for df in iter_frames(store, layout.quarantine_files(store), ["key", "stage", "reason"]):
        yield df.filter(pl.col("reason") == r) if r else df


def _driver(store: Store, spec: SampleSpec) -> Iterator[pl.DataFrame]:
    """Frames with ``key, section, section_rank, _order`` for the flat and sectioned views."""
    v, seed = spec.view, spec.seed
    if v == "all":
        for df in iter_frames(store, key_tables(store, spec.shards), ["key", "source"]):
            yield _label(df, "random samples", 0, seed)
    elif v == "kept":
        for df in iter_frames(store, layout.curated_decision_files(store), ["key", "status"]):
            yield _label(df.filter(pl.col("status") == "kept"), "kept by curated", 0, seed)
    elif v == "unique":
        for df in iter_frames(store, one_table(layout.semdedup_scores()),
                              ["key", "space", "cluster", "unique", "duplicate"]):
            yield _label(df.filter(pl.col("unique") & ~pl.col("duplicate")),
                         "unique after SemDeDup", 0, seed)
    elif v == "removed":
        for df in _removed_frames(store, spec):
            if "stage" in df.columns:  # a quarantine table
                yield _label(df, pl.format("quarantined at {}: {}", "stage", "reason"), 1, seed)
            else:
                yield _label(df, pl.format("removed: {}", "reason"), 0, seed)
    elif v == "cluster":
        for df in iter_frames(store, one_table(layout.cluster_assignments())):
            rank = pl.when(pl.col("space") == "image").then(0).otherwise(1_000_000) + \
                pl.col("cluster")
            yield _label(df, pl.format("{} cluster {}", "space", "cluster"), rank, seed)
    elif v == "decile":
        for df in iter_frames(store, one_table(layout.ppl_deciles())):
            df = df.filter(pl.col("decile") >= 0) if spec.decile is None else df
            for side, sign in (("lowest", 1.0), ("highest", -1.0)):
                out = _label(df, pl.format("decile {} · {} perplexity", "decile", pl.lit(side)),
                             pl.col("decile") * 2 + (sign < 0), seed)
                yield out.with_columns((pl.col("ppl").fill_null(0.0) * sign).alias("_order"))
    elif v == "synthetic":
        for df in _synthetic_frames(store, spec.source):
            yield _label(df, pl.format("synthetic: {}", "source"), 0, seed)
    elif v == "flagged":
        for df in flagged_frames(store, spec.shards):
            rank = pl.col("flag").replace_strict(FLAG_RANK, default=99.0,
                                                 return_dtype=pl.Float64)
            yield _label(df, pl.format("text flag: {}", "flag"), rank, seed)


def synthetic_spec_name(source: str | None) -> str | None:
    """``--source`` of the synthetic view: a spec name, or a sample source
    ``synthetic:NAME``."""
    return source.removeprefix("synthetic:") if source else source


def _synthetic_frames(store: Store, source: str | None) -> Iterator[pl.DataFrame]:
    """``key, source (spec), shard (path)`` of every rendered synthetic sample (of one spec
    when ``source`` is given), read from the shards' tar headers (no table lists them)."""
    from mm_assets.browse.fetch import tar_keys

    want = synthetic_spec_name(source)
    names = layout.synthetic_spec_names(store)
    if want is not None and want not in names:
        raise ValueError(f"no rendered synthetic spec {want!r} under {store.root}; "
                         f"rendered: {', '.join(names) or 'none'}")
    for name in [want] if want else names:
        for path in layout.synthetic_shards(store, name):
            keys = tar_keys(store, path)
            yield pl.DataFrame({"key": keys, "source": [name] * len(keys),
                                "shard": [path] * len(keys)},
                               schema={"key": pl.Utf8, "source": pl.Utf8, "shard": pl.Utf8})


def _filters(store: Store, spec: SampleSpec, columns: list[str]) -> tuple[list[pl.Expr],
                                                                         pl.Series | None]:
    """Filter expressions on the driver's own columns, and the key set of the others."""
    wanted = {"cluster": spec.cluster, "space": spec.space, "decile": spec.decile,
              "source": spec.source if spec.view != "synthetic" else None,
              "reason": spec.reason, "flag": spec.flag}
    exprs, sets = [], []
    for col, val in wanted.items():
        if val is None:
            continue
        if col in columns:
            exprs.append(pl.col(col) == val)
        elif col in ("cluster", "space") and not sets_has(sets, "cluster"):
            pred = [pl.col(c) == wanted[c] for c in ("cluster", "space") if wanted[c] is not None]
            sets.append(("cluster", _keys(store, one_table(layout.cluster_assignments()), pred,
                                          ["key", "cluster", "space"])))
        elif col == "decile":
            sets.append(("decile", _keys(store, one_table(layout.ppl_deciles()),
                                         [pl.col("decile") == val],
                                         ["key", "decile"])))
        elif col == "source":
            tables = (one_table(layout.ppl_deciles()) if store.exists(layout.ppl_deciles())
                      else key_tables(store, spec.shards))
            sets.append(("source", _keys(store, tables, [pl.col("source") == val],
                                         ["key", "source"])))
        elif col == "flag":
            sets.append(("flag", _keys(store, flag_tables(store, spec.shards),
                                       [pl.col("flag") == val], ["key", "flag"]).unique()))
        elif col == "reason":
            frames = list(_removed_frames(store, spec))
            sets.append(("reason", pl.concat([f.select("key") for f in frames])["key"]
                         if frames else pl.Series("key", [], pl.Utf8)))
    if spec.shards is not None and "shard" not in columns and spec.view != "synthetic":
        sets.append(("shards", _keys(store, key_tables(store, spec.shards), [], ["key"])))
    keyset = None
    for _, s in sets:
        keyset = s if keyset is None else keyset.filter(keyset.is_in(s))
    return exprs, keyset


def sets_has(sets: list, name: str) -> bool:
    return any(n == name for n, _ in sets)


def _keys(store: Store, tables, pred: list[pl.Expr], columns: list[str]) -> pl.Series:
    """Keys of ``tables`` rows matching every predicate (memory: the matching keys)."""
    parts = [df.filter(*pred)["key"] if pred else df["key"]
             for df in iter_frames(store, tables, columns)]
    return pl.concat(parts) if parts else pl.Series("key", [], pl.Utf8)


DRIVER_COLUMNS = {
    "all": ["key", "source", "shard"], "kept": ["key", "status", "shard"],
    "unique": ["key", "space", "cluster", "unique", "duplicate"],
    "removed": ["key", "reason", "stage", "shard"], "cluster": ["key", "space", "cluster"],
    "decile": ["key", "ppl", "decile", "source"],
    "exact-groups": ["key", "kind", "group_id", "group_size", "representative",
                     "is_representative", "action"],
    "near-groups": ["key", "near_group", "near_group_size"],
    "flagged": ["key", "source", "flag", "shard"], "synthetic": ["key", "source", "shard"]}


def _restrict(df: pl.DataFrame, exprs: list[pl.Expr], keyset: pl.Series | None,
              spec: SampleSpec) -> pl.DataFrame:
    if exprs:
        df = df.filter(*exprs)
    if keyset is not None:
        df = df.filter(pl.col("key").is_in(keyset))
    if spec.shards is not None and "shard" in df.columns:
        df = df.filter(pl.col("shard").is_in(list(spec.shards)))
    return df


def select(store: Store, spec: SampleSpec) -> Selection:
    """The rows a gallery of ``spec`` shows (see the module docstring for memory).

    Raises:
        FileNotFoundError: the view's driver table is not materialized (names the asset).
    """
    _require(store, spec.view)
    if spec.view in GROUPS:
        return _select_groups(store, spec)
    exprs, keyset = _filters(store, spec, DRIVER_COLUMNS[spec.view])
    top = SectionTopK(spec.per_section)
    for df in _driver(store, spec):
        top.add(_restrict(df, exprs, keyset, spec))
    return _finish(top, spec)


REQUIRES = {"kept": ("curated", None), "unique": ("semdedup", layout.semdedup_scores),
            "cluster": ("clusters", layout.cluster_assignments),
            "decile": ("ppl_deciles", layout.ppl_deciles),
            "exact-groups": ("exact_duplicates", layout.exact_groups),
            "near-groups": ("exact_duplicates", layout.near_groups),
            "flagged": ("text_quality", None), "synthetic": ("synthetic", None)}
LISTED = {"kept": layout.curated_decision_files, "flagged": layout.text_quality_files,
          "synthetic": layout.synthetic_spec_names}


def _require(store: Store, view: str) -> None:
    asset, rel = REQUIRES.get(view, (None, None))
    if asset is None:
        return
    if (rel is None and not LISTED[view](store)) or (
            rel is not None and not store.exists(rel())):
        raise FileNotFoundError(f"view {view} needs the {asset} asset, not materialized under "
                                f"{store.root}: run `mm-assets run --select {asset}` first")


def _finish(top: SectionTopK, spec: SampleSpec) -> Selection:
    rows = top.result()
    sections = rows["section"].unique(maintain_order=True)
    left = max(0, len(sections) - spec.max_sections)
    if left:
        rows = rows.filter(pl.col("section").is_in(sections[: spec.max_sections].implode()))
    if "shard" not in rows.columns:
        rows = rows.with_columns(pl.lit(None, pl.Utf8).alias("shard"))
    return Selection(rows.drop("_order"), dict(top.counts), left)


GROUPS = {"exact-groups": (layout.exact_groups, "group_id"),
          "near-groups": (layout.near_groups, "near_group")}


def _select_groups(store: Store, spec: SampleSpec) -> Selection:
    """``n`` seeded groups (bottom-k of ``hash(group)``) having a member that passes the
    filters, then up to :data:`MAX_MEMBERS` members each (representative first)."""
    rel, gcol = GROUPS[spec.view]
    cols = DRIVER_COLUMNS[spec.view]
    exprs, keyset = _filters(store, spec, cols)
    top = SectionTopK(spec.per_section, distinct=True)
    for df in iter_frames(store, one_table(rel()), cols):
        g = _restrict(df, exprs, keyset, spec).select(pl.col(gcol).alias("key"))
        top.add(_label(g, "groups", 0, spec.seed))
    chosen = top.result()["key"]
    members = rows_for_keys(store, one_table(rel()), chosen, cols, on=gcol)
    if members.height == 0:
        return Selection(members, {}, 0)
    rank = pl.DataFrame({gcol: chosen, "section_rank": range(len(chosen))},
                        schema_overrides={"section_rank": pl.Float64})
    first = (~pl.col("is_representative")) if "is_representative" in cols else pl.lit(True)
    members = (members.join(rank, on=gcol).with_columns(first.alias("_o"))
               .sort("section_rank", "_o", "key").group_by(gcol, maintain_order=True)
               .head(MAX_MEMBERS).drop("_o"))
    size = "group_size" if gcol == "group_id" else "near_group_size"
    label = (pl.format("exact {} group {} · {} samples", "kind", pl.col(gcol).str.slice(0, 10),
                       size) if gcol == "group_id" else
             pl.format("near-duplicate group {} · {} samples", gcol, size))
    rows = members.with_columns(label.alias("section"), pl.lit(None, pl.Utf8).alias("shard"))
    return Selection(rows, {"groups": top.counts["groups"]}, 0)
