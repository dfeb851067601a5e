"""The corpus funnel: every curation stage's numbers over the whole corpus, reconciled.

One typed record, :class:`Funnel`, built from the storage root alone (stage counts from commit
records, see :mod:`.counts`; the break-downs from the decision tables the stages wrote). The CLI
summary, the ``report`` asset's metadata and the HTML report are all rendered from it
(:mod:`.render`), so they show the same figures.

Flow (each figure summed over all partitions)::

    records read - quarantined                       = raw samples
    raw - exact copies removed (per policy)           = after exact dedup
    (near duplicates: reported, nothing removed here)
    after exact - SemDeDup removals                   = after SemDeDup
    after SemDeDup - quality filters                  = curated
    curated - folded into merged groups + extra parts = merged shards
    each mixture: its source's samples - filters - not drawn = drawn
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import polars as pl

from mm_assets.core import layout, schemas
from mm_assets.core.report.counts import Totals, sharded_keys, split_parts, totals
from mm_assets.core.storage import Store

Kind = Literal["total", "removed", "quarantined", "added", "info"]
CURATE_OWN = ("exact_duplicate", "semdedup")  # curated reasons owned by the dedup stages


@dataclass(slots=True)
class Row:
    """One figure of the funnel.

    Attributes:
        stage: the stage it belongs to (``ingest``, ``exact dedup``, ..., ``mixture NAME``).
        figure: what is counted, in words.
        n: number of samples.
        kind: ``total`` (samples at this point of the flow), ``removed`` / ``quarantined``
            (taken out here), ``added`` (put in here), ``info`` (counted, nothing taken out).
        note: what the figure means (e.g. what happens to those samples later).
    """

    stage: str
    figure: str
    n: int
    kind: Kind
    note: str = ""


@dataclass(slots=True)
class Check:
    """A reconciliation between two independently recorded figures."""

    name: str
    expected: int
    actual: int

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


@dataclass(slots=True)
class Funnel:
    """The whole corpus's numbers, stage by stage.

    Attributes:
        rows: figures in flow order; within a stage, ``total`` rows equal the previous total
            minus its ``removed``/``quarantined`` rows plus its ``added`` rows.
        checks: reconciliations between stages (each figure recorded by two stages).
        sources: asset -> where its counts came from (``commit records`` / ``outputs``).
        partitions: asset -> number of partitions summed.
    """

    rows: list[Row] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)
    partitions: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def total(self, stage: str) -> int:
        """The last ``total`` figure of ``stage``.

        Raises:
            KeyError: the stage has no total (it was not materialized).
        """
        for r in reversed(self.rows):
            if r.stage == stage and r.kind == "total":
                return r.n
        raise KeyError(stage)

    def first(self, stage: str) -> int:
        """The first ``total`` figure of ``stage`` (what entered it).

        Raises:
            KeyError: the stage has no total.
        """
        for r in self.rows:
            if r.stage == stage and r.kind == "total":
                return r.n
        raise KeyError(stage)

    def headline(self) -> dict[str, int]:
        """``records, raw, curated, merged`` (those materialized) for summaries."""
        out = {"records": self.first("ingest"), "raw": self.total("ingest")}
        for name, stage in (("curated", "quality filters"), ("merged", "merged")):
            if any(r.stage == stage for r in self.rows):
                out[name] = self.total(stage)
        return out

    def figures(self) -> list[tuple[str, str, int]]:
        """``(stage, figure, n)`` of every row: what each rendering must show."""
        return [(r.stage, r.figure, r.n) for r in self.rows]


def _decisions(store: Store, t: Totals) -> pl.DataFrame:
    frames = [store.read_table(layout.curated_decisions(s), schemas.CURATED_DECISIONS).select(
        "key", "status", "reason") for s in t.partitions]
    return pl.concat(frames) if frames else pl.DataFrame(schema=schemas.CURATED_DECISIONS)


def _read(store: Store, rel: str, cols: dict) -> pl.DataFrame:
    """The table at ``rel`` checked for the columns ``cols`` it is read for (empty when the
    table does not exist)."""
    return store.read_table(rel, cols) if store.exists(rel) else pl.DataFrame(schema=cols)


class FunnelBuilder:
    """Reads the root once and appends rows and checks stage by stage."""

    def __init__(self, store: Store):
        self.store, self.f = store, Funnel()
        self.t = {a: totals(store, a) for a in ("raw_shards", "exact_duplicates", "curated",
                                                "merged", "rephrased", "mixtures")}
        for a, t in self.t.items():
            self.f.sources[a], self.f.partitions[a] = t.source, len(t.partitions)
        self.groups = _read(store, layout.EXACT_GROUPS, schemas.subset(
            schemas.EXACT_GROUPS, "key", "kind", "group_id", "is_representative", "action"))
        self.decisions = _decisions(store, self.t["curated"])
        self.reason = dict(zip(self.decisions["key"], self.decisions["reason"], strict=True))
        self.sizes: dict[str, int] = {}  # mixture source name -> samples it offers

    def row(self, stage: str, figure: str, n: int, kind: Kind, note: str = "") -> None:
        self.f.rows.append(Row(stage, figure, int(n), kind, note))

    def check(self, name: str, expected: int, actual: int) -> None:
        self.f.checks.append(Check(name, int(expected), int(actual)))

    def ingest(self) -> int:
        raw = self.t["raw_shards"].counts
        self.row("ingest", "records read", raw.n_in, "total",
                 f"every input record, over {self.f.partitions['raw_shards']} shards")
        for reason, n in sorted(raw.quarantined.items()):
            self.row("ingest", f"quarantined: {reason}", n, "quarantined",
                     "unusable record, kept with its error in "
                     f"{layout.quarantine_dir(layout.RAW_SHARDS)}/")
        self.row("ingest", "raw samples", raw.n_out, "total", "canonical samples in raw_shards")
        self.check("raw_shards: records read = samples + quarantined", raw.n_in,
                   raw.n_out + raw.n_quarantined)
        self.sizes["raw"] = self.sizes["exact_dedup"] = raw.n_out
        return raw.n_out

    def exact(self, n: int) -> int:
        ex, g = self.t["exact_duplicates"].counts, self.groups
        img, txt = g.filter(pl.col("kind") == "image"), g.filter(pl.col("kind") == "text")
        stage = "exact dedup"
        self.row(stage, "image duplicate groups (identical pixels)", img["group_id"].n_unique(),
                 "info", f"{img.height} samples in them")
        self.row(stage, "text-only duplicate groups (identical text)",
                 txt["group_id"].n_unique(), "info", f"{txt.height} samples in them")
        merge = g.filter((pl.col("action") == "merge") & ~pl.col("is_representative")).height
        self.row(stage, "image copies kept for merging", merge, "info",
                 "not removed: `merged` folds each group into one multi-turn sample")
        removed = g.filter(pl.col("action") == "remove")
        self.row(stage, "exact copies removed", removed.height, "removed",
                 "one sample per group kept (smallest key); by policy: text-only copies under "
                 "`merge`, all copies under `keep_one`")
        self.row(stage, "after exact dedup", n - removed.height, "total")
        self.check("exact_duplicates read every raw sample", n, ex.n_in)
        self.check("exact_duplicates: removed = group rows marked remove", removed.height,
                   ex.removed.get("exact_duplicate", 0))
        self.check("curated removed the exact copies exact_duplicates marked", removed.height,
                   self.t["curated"].counts.removed.get("exact_duplicate", 0))
        return n - removed.height

    def near(self) -> None:
        near = _read(self.store, layout.NEAR_GROUPS,
                     schemas.subset(schemas.NEAR_GROUPS, "key", "near_group"))
        stage, exact_keys = "near duplicates", set(self.groups["key"].to_list())
        outcome = {"exact": 0, "semdedup": 0, "kept": 0, "other": 0}
        for k in near["key"].to_list():
            r = self.reason.get(k)
            outcome["exact" if k in exact_keys else "semdedup" if r == "semdedup"
                    else "kept" if r is None else "other"] += 1
        self.row(stage, "near-duplicate groups (perceptual hash)", near["near_group"].n_unique(),
                 "info", "reported, nothing removed at this step")
        self.row(stage, "samples in near-duplicate groups", near.height, "info")
        for key, figure, note in [
                ("exact", "... also exact duplicates", "follow the exact-dedup policy above"),
                ("semdedup", "... removed by SemDeDup", "their embedding matched a kept sample"),
                ("other", "... removed by a quality filter", ""),
                ("kept", "... kept in curated", "similar but not close enough for SemDeDup")]:
            self.row(stage, figure, outcome[key], "info", note)
        self.check("near duplicates: every sample has one outcome", near.height,
                   sum(outcome.values()))

    def semdedup(self, n: int) -> int:
        scores = _read(self.store, layout.SEMDEDUP_SCORES,
                       schemas.subset(schemas.SEMDEDUP_SCORES, "key", "unique", "duplicate"))
        stage, dup = "SemDeDup", set(scores.filter(pl.col("duplicate"))["key"].to_list())
        sem = self.decisions.filter(pl.col("reason") == "semdedup")["key"].to_list()
        direct = sum(1 for k in sem if k in dup)
        self.row(stage, "unique samples scored", int(scores["unique"].sum()), "info",
                 "one per exact group + every singleton; exact copies are not scored and not "
                 "removed by SemDeDup (they are merged later)")
        embedded_gap = self.t["raw_shards"].counts.n_out - scores.height
        self.row(stage, "samples not embedded (no score)", max(0, embedded_gap), "info",
                 "kept: SemDeDup cannot judge them")
        if "unconfirmed" in scores.columns:
            self.row(stage, "above the threshold, kept: unconfirmed", int(scores[
                "unconfirmed"].fill_null(False).sum()), "info", "dense cluster (text pages, "
                "templated charts) and the pair's pHash differs: not a copy")
        self.row(stage, "semantic duplicates removed", direct, "removed",
                 "cosine to an earlier-ranked sample of the cluster >= 1 - ε")
        self.row(stage, "exact copies of a removed semantic duplicate", len(sem) - direct,
                 "removed", "removed with their group's representative (one unique image)")
        self.row(stage, "after SemDeDup", n - len(sem), "total")
        self.check("curated removed every sample SemDeDup marked duplicate", len(dup), direct)
        self.check("curated: semdedup removals = duplicates + their exact copies",
                   self.t["curated"].counts.removed.get("semdedup", 0), len(sem))
        return n - len(sem)

    def text_flags(self) -> None:
        """Samples flagged per text-quality flag and per source (flags remove only what
        curated's ``text_filters`` select; the removals are the ``text_*`` rows below)."""
        used = schemas.subset(schemas.TEXT_QUALITY, "key", "source", "flag")
        parts = [self.store.read_table(layout.text_quality(s), used)
                 for s in layout.shard_ids(self.store, layout.TEXT_QUALITY, layout.PARQUET)]
        if not parts:
            return
        flags = pl.concat(parts).unique(["key", "flag"])
        stage = "quality filters"
        self.row(stage, "samples with a text-quality flag", flags["key"].n_unique(), "info",
                 "text_quality flags per turn; curated removes the flags in its text_filters")
        for flag, k in sorted(flags.group_by("flag").agg(pl.col("key").n_unique())
                              .iter_rows()):
            self.row(stage, f"flagged: {flag}", k, "info", "")
        for source, k in sorted(flags.group_by("source").agg(pl.col("key").n_unique())
                                .iter_rows()):
            self.row(stage, f"flagged in source {source}", k, "info", "")

    def quality(self, n: int) -> int:
        cur = self.t["curated"].counts
        self.text_flags()
        for reason, k in sorted(cur.removed.items()):
            if reason not in CURATE_OWN:
                self.row("quality filters", f"removed: {reason}", k, "removed",
                         "decided by curated from the quality stages' scores")
                n -= k
        self.row("quality filters", "curated samples", n, "total",
                 f"kept in curated/, over {self.f.partitions['curated']} shards")
        self.check("curated read every raw sample", self.t["raw_shards"].counts.n_out, cur.n_in)
        self.check("curated samples = raw - exact - SemDeDup - quality", n, cur.n_out)
        self.sizes["curated"] = cur.n_out
        return cur.n_out

    def merged(self, n: int) -> int:
        m = self.t["merged"]
        if not m.partitions:
            return n
        keys = sharded_keys(self.store, layout.MERGED)
        split, stage = split_parts(keys), "merged"
        self.row(stage, "folded into their group's merged sample",
                 m.counts.removed.get("merged_into_group", 0), "removed",
                 "samples sharing one image: their turns live on in one multi-turn sample")
        self.row(stage, "merged samples", m.counts.n_out, "total")
        self.row(stage, "extra parts of long groups", split, "added",
                 "a group over max_turns is split into several samples, none lost")
        self.row(stage, "samples in merged shards", len(keys), "total")
        self.sizes["merged"] = len(keys)
        self.check("merged read every curated sample", n, m.counts.n_in)
        self.check("merged shards = merged samples + extra parts", m.counts.n_out + split,
                   len(keys))
        r = self.t["rephrased"]
        if r.partitions:
            self.row("rephrased", "rephrased samples", r.counts.n_out, "total",
                     "same samples, assistant turns rewritten where the fidelity check passed")
            self.check("rephrased read every merged sample", len(keys), r.counts.n_in)
            self.sizes["rephrased"] = r.counts.n_out
        return len(keys)


def build_funnel(store: Store) -> Funnel:
    """The corpus funnel of the root, every figure summed over all committed partitions.

    Reads the stages' commit records (or outputs, see :mod:`.counts`), the exact and near
    duplicate groups, SemDeDup scores, every curated decision table (key, status, reason: about
    100 bytes per sample in memory) and the merged tars' member names (headers only).

    Raises:
        ValueError: raw_shards has no partition (nothing was ingested and materialized).
    """
    from mm_assets.core.report.mixtures import mixture_rows

    b = FunnelBuilder(store)
    if not b.t["raw_shards"].partitions:
        raise ValueError(f"no raw_shards partition under {store.root}: run the graph first")
    n = b.ingest()
    if b.t["curated"].partitions:
        n = b.exact(n)
        b.near()
        n = b.semdedup(n)
        b.quality(n)
        b.merged(b.t["curated"].counts.n_out)
    mixture_rows(b)
    return b.f
