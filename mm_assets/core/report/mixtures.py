"""Funnel rows of the mixtures: each recipe is a branch drawn from one or more stages."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mm_assets.core import layout

if TYPE_CHECKING:
    from mm_assets.core.report.funnel import FunnelBuilder

REMOVED_NOTES = {
    "exact_duplicate": "exact copies left out (source exact_dedup = raw minus copies)",
    "outside_deciles": "perplexity decile outside the recipe's range",
    "filtered_min_answer_tokens": "answer shorter than the recipe's min_answer_tokens",
}


def _manifest(b: FunnelBuilder, name: str) -> dict | None:
    rel = layout.mixture_manifest(name)
    return b.store.read_json(rel) if b.store.exists(rel) else None


def mixture_rows(b: FunnelBuilder) -> None:
    """Per recipe: source samples read, filters, not drawn, drawn, written; a check that each
    asset source was read whole (its sample count equals that stage's figure above)."""
    t = b.t["mixtures"]
    for name in t.partitions:
        c, man, stage = t.per[name], _manifest(b, name), f"mixture {name}"
        per_source = man["source"]["per_source"] if man else {}
        b.row(stage, "source samples read", c.n_in, "total",
              "from " + (", ".join(f"{s} ({v['samples']})" for s, v in per_source.items())
                         or "its recipe's sources"))
        for reason, n in sorted(c.removed.items()):
            if reason != "not_sampled":
                b.row(stage, f"removed: {reason}", n, "removed", REMOVED_NOTES.get(reason, ""))
        for reason, n in sorted(c.quarantined.items()):
            b.row(stage, f"quarantined: {reason}", n, "quarantined",
                  f"rows in {layout.quarantine(layout.MIXTURES, name)}")
        b.row(stage, "eligible, not drawn", c.removed.get("not_sampled", 0), "removed",
              "left out by the recipe's ratio or total")
        b.row(stage, "drawn (distinct samples)", c.n_out, "total", "written to "
              f"{layout.mixture_dir(name)}/")
        if man:
            b.row(stage, "written (with repeats)", man["summary"]["samples"], "info",
                  "draws with replacement repeat samples" if man.get("with_replacement")
                  else "no repeats (drawn without replacement)")
        for src, v in per_source.items():
            if v.get("asset") in b.sizes:
                b.check(f"mixture {name}: read all of {src}", b.sizes[v["asset"]], v["samples"])
        b.check(f"mixture {name}: read = removed + quarantined + drawn", c.n_in,
                c.n_out + c.n_removed + c.n_quarantined)
