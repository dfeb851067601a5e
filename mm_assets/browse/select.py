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

import polars as pl

from mm_assets.browse import _layout as layout
from mm_assets.browse.filters import filters, removed_frames, restrict
from mm_assets.browse.flags import FLAG_RANK, flagged_frames
from mm_assets.browse.spec import (  # noqa: F401  (re-exported: the browser's public names)
    ASSET_VIEWS,
    DEFAULT_N,
    MAX_MEMBERS,
    VIEWS,
    SampleSpec,
    View,
    spec_for_asset,
)
from mm_assets.browse.tables import SectionTopK, iter_frames, key_tables, one_table, rows_for_keys
from mm_assets.core.storage import Store


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
        for df in removed_frames(store, spec):
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


DRIVER_COLUMNS = {
    "all": ["key", "source", "shard"], "kept": ["key", "status", "shard"],
    "unique": ["key", "space", "cluster", "unique", "duplicate"],
    "removed": ["key", "reason", "stage", "shard"], "cluster": ["key", "space", "cluster"],
    "decile": ["key", "ppl", "decile", "source"],
    "exact-groups": ["key", "kind", "group_id", "group_size", "representative",
                     "is_representative", "action"],
    "near-groups": ["key", "near_group", "near_group_size"],
    "flagged": ["key", "source", "flag", "shard"], "synthetic": ["key", "source", "shard"]}


def select(store: Store, spec: SampleSpec) -> Selection:
    """The rows a gallery of ``spec`` shows (see the module docstring for memory).

    Raises:
        FileNotFoundError: the view's driver table is not materialized (names the asset).
    """
    require_tables(store, spec.view)
    if spec.view in GROUPS:
        return _select_groups(store, spec)
    exprs, keyset = filters(store, spec, DRIVER_COLUMNS[spec.view])
    top = SectionTopK(spec.per_section)
    for df in _driver(store, spec):
        top.add(restrict(df, exprs, keyset, spec))
    return _finish(top, spec)


REQUIRES = {"kept": ("curated", None), "unique": ("semdedup", layout.semdedup_scores),
            "cluster": ("clusters", layout.cluster_assignments),
            "decile": ("ppl_deciles", layout.ppl_deciles),
            "exact-groups": ("exact_duplicates", layout.exact_groups),
            "near-groups": ("exact_duplicates", layout.near_groups),
            "flagged": ("text_quality", None), "synthetic": ("synthetic", None)}
LISTED = {"kept": layout.curated_decision_files, "flagged": layout.text_quality_files,
          "synthetic": layout.synthetic_spec_names}


def require_tables(store: Store, view: str) -> None:
    """Raise ``FileNotFoundError`` (naming the asset to run) when ``view``'s tables are not
    materialized under ``store``."""
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
    exprs, keyset = filters(store, spec, cols)
    top = SectionTopK(spec.per_section, distinct=True)
    for df in iter_frames(store, one_table(rel()), cols):
        g = restrict(df, exprs, keyset, spec).select(pl.col(gcol).alias("key"))
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
