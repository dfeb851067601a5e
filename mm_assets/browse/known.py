"""Why a gallery is empty: the known values of each filter, read from the filter's own table.

When a view with filters selects no sample, ``mm-assets sample`` exits 2 with one line naming the
filters that match nothing and the values the root does have (``--source nope matches no
sample; known sources: coco (120), docvqa (80)``), like a production CLI; when each filter
matches alone but not together, it says so with each filter's count.

Memory: the distinct values and their counts (sources, reasons, flags, clusters per space,
deciles) plus one table batch; the tables are streamed as :mod:`mm_assets.browse.filters` does.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import polars as pl

from mm_assets.browse import _layout as layout
from mm_assets.browse.filters import removed_frames
from mm_assets.browse.flags import flag_tables
from mm_assets.browse.select import require_tables
from mm_assets.browse.spec import VIEWS, SampleSpec
from mm_assets.browse.tables import iter_frames, key_tables, one_table

SHOWN = 24  # known values listed at most (then "... and N more")
FILTERS = ("reason", "cluster", "space", "decile", "source", "flag")


class NoMatchError(ValueError):
    """A gallery's view and filters select no sample; the message lists the known values."""


def _counts(store, tables, col: str, pred: pl.Expr | None = None) -> Counter:
    out: Counter = Counter()
    for df in iter_frames(store, tables, list(dict.fromkeys(["key", col, "space"]))):
        if col not in df.columns:
            continue
        df = df.filter(pred) if pred is not None else df
        out.update(dict(df.group_by(col).len().iter_rows()))
    return out


def _source_tables(store, spec: SampleSpec):
    return (one_table(layout.ppl_deciles()) if store.exists(layout.ppl_deciles())
            else key_tables(store, spec.shards))


def known_reasons(store, spec: SampleSpec) -> Counter:
    """Removal and quarantine reason -> samples (curated decisions, quarantine, and the
    ``semdedup`` / ``exact_duplicate`` tables that ``--reason`` also reads)."""
    out: Counter = Counter()
    for df in removed_frames(store, replace(spec, reason=None)):
        out.update(dict(df.group_by("reason").len().iter_rows()))
    for r in ("semdedup", "exact_duplicate"):  # --reason reads these from their own tables
        n = sum(df.height for df in removed_frames(store, replace(spec, reason=r)))
        if n:
            out[r] = n
        else:
            out.pop(r, None)
    return out


def _ranges(values: list[int]) -> str:
    """``[1, 2, 3, 5, 7, 8]`` -> ``1-3, 5, 7-8``."""
    runs: list[list[int]] = []
    for v in sorted(values):
        if runs and v == runs[-1][1] + 1:
            runs[-1][1] = v
        else:
            runs.append([v, v])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _listing(counts: Counter) -> str:
    items = sorted(counts.items(), key=lambda kv: (str(kv[0])))
    text = ", ".join(f"{v} ({c})" for v, c in items[:SHOWN])
    return text + (f", ... and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


def _cluster_listing(store, space: str | None) -> str:
    per: dict[str, Counter] = {}
    rel = one_table(layout.cluster_assignments())
    for df in iter_frames(store, rel, ["space", "cluster"]):
        if space is not None:
            df = df.filter(pl.col("space") == space)
        for sp, c, n in df.group_by("space", "cluster").len().iter_rows():
            per.setdefault(sp, Counter())[c] += n
    return "; ".join(f"{sp} {_ranges(list(c))} ({sum(c.values())} samples)"
                     for sp, c in sorted(per.items())) if per else ""


def _known(store, spec: SampleSpec, name: str) -> tuple[Counter, str]:
    """(value -> samples, listing) of one filter over the whole root."""
    if name == "source":
        c = _counts(store, _source_tables(store, spec), "source")
        return c, _listing(c)
    if name == "reason":
        c = known_reasons(store, spec)
        return c, _listing(c)
    if name == "flag":
        c: Counter = Counter()
        for df in iter_frames(store, flag_tables(store, spec.shards), ["key", "flag"]):
            c.update(dict(df.unique(["key", "flag"]).group_by("flag").len().iter_rows()))
        none = (_not_materialized("text_quality") if not flag_tables(store, spec.shards)
                else "none")
        return c, _listing(c) or none
    if name == "decile":
        if not store.exists(layout.ppl_deciles()):
            return Counter(), _not_materialized("ppl_deciles")
        c = _counts(store, one_table(layout.ppl_deciles()), "decile")
        return c, _listing(c)
    if not store.exists(layout.cluster_assignments()):
        return Counter(), _not_materialized("clusters")
    rel = one_table(layout.cluster_assignments())
    if name == "space":
        c = _counts(store, rel, "space")
        return c, _listing(c)
    pred = pl.col("space") == spec.space if spec.space is not None else None
    c = _counts(store, rel, "cluster", pred)
    return c, _cluster_listing(store, spec.space)


def _not_materialized(asset: str) -> str:
    return f"none ({asset} is not materialized: run `mm-assets run --select {asset}`)"


def _flag_text(spec: SampleSpec, names: list[str]) -> str:
    return " ".join(f"--{n} {getattr(spec, n)}" for n in names if getattr(spec, n) is not None)


def explain_empty(store, spec: SampleSpec) -> str:
    """One line on why ``spec`` selects no sample under ``store``.

    Filters whose value no sample of the root has are named with the known values of that
    filter (``--cluster`` with ``--space`` counts as one filter); when each filter matches
    some samples alone, the line gives each one's count and says the view and filters select
    nothing together. Without filters: the views whose tables are materialized.
    """
    given = [n for n in FILTERS if getattr(spec, n) is not None]
    if spec.view == "synthetic":
        given = [n for n in given if n != "source"]  # a spec name: checked by the view itself
    if not given:
        have = [v for v in VIEWS if _materialized(store, v)]
        return (f"view {spec.view} selects no sample under {store.root}; views with their "
                f"tables materialized: {', '.join(have) or 'none'}")
    parts, alone = [], []
    groups = [["cluster", "space"] if n == "cluster" else [n] for n in given
              if not (n == "space" and spec.cluster is not None)]
    for names in groups:
        counts, listing = _known(store, spec, names[0])
        n = counts.get(getattr(spec, names[0]), 0)
        if n == 0:
            plural = {"reason": "reasons", "cluster": "clusters", "space": "spaces",
                      "decile": "deciles", "source": "sources", "flag": "flags"}[names[0]]
            parts.append(f"{_flag_text(spec, names)} matches no sample; known {plural}: "
                         f"{listing or 'none'}")
        else:
            alone.append(f"{_flag_text(spec, names)} alone matches {n} samples")
    if parts:
        return "; ".join(parts)
    return (f"view {spec.view} with {_flag_text(spec, given)} selects no sample under "
            f"{store.root}: {'; '.join(alone)}")


def _materialized(store, view: str) -> bool:
    try:
        require_tables(store, view)
    except FileNotFoundError:
        return False
    return True
