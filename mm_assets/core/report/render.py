"""Renderings of one :class:`~mm_assets.core.report.funnel.Funnel`: text (CLI), rows (the
``report`` asset's metadata table) and a self-contained HTML page. All three print the same
``label(row)`` and ``row.n`` for every row, so they cannot disagree."""

from __future__ import annotations

import base64
import html

from mm_assets.core.report.funnel import Funnel, Row

SIGN = {"total": "=", "removed": "-", "quarantined": "-", "added": "+", "info": ""}
WIDTH = 50  # label column of the text rendering (wider when a label is longer)


def label(row: Row) -> str:
    """The row's figure with its sign: ``= raw samples``, ``- quarantined: bad_json``."""
    return f"{SIGN[row.kind]} {row.figure}".strip()


def stages(f: Funnel) -> list[tuple[str, list[Row]]]:
    """Rows grouped by stage, in flow order."""
    out: list[tuple[str, list[Row]]] = []
    for r in f.rows:
        if not out or out[-1][0] != r.stage:
            out.append((r.stage, []))
        out[-1][1].append(r)
    return out


def table_rows(f: Funnel) -> list[dict[str, str | int]]:
    """One dict per row: ``stage, figure (signed label), samples, meaning``."""
    return [{"stage": r.stage, "figure": label(r), "samples": r.n, "meaning": r.note}
            for r in f.rows]


def headline(f: Funnel) -> str:
    """One line: records read -> raw -> curated -> merged, and the checks."""
    ok = sum(c.ok for c in f.checks)
    return (" -> ".join(f"{k} {v}" for k, v in f.headline().items())
            + f"; {ok}/{len(f.checks)} checks reconcile")


def render_text(f: Funnel, root: str = "") -> str:
    """The funnel as fixed-width text (what ``mm-assets report`` prints)."""
    lines = [f"corpus funnel{f' of {root}' if root else ''}: {headline(f)}"]
    width = max([WIDTH, *(len(label(r)) + 2 for r in f.rows)])
    for stage, rows in stages(f):
        lines.append(f"\n{stage}")
        for r in rows:
            note = f"  {r.note}" if r.note else ""
            lines.append(f"  {label(r):<{width}}{r.n:>10}{note}")
    lines.append("\nchecks")
    for c in f.checks:
        status = "ok  " if c.ok else "FAIL"
        extra = "" if c.ok else f" (expected {c.expected}, got {c.actual})"
        lines.append(f"  {status} {c.name}{extra}")
    src = ", ".join(f"{a} ({f.partitions[a]} partitions, {s})" for a, s in f.sources.items())
    lines.append(f"\ncounts from: {src}")
    return "\n".join(lines) + "\n"


CSS = """
body{font-family:Liberation Sans,Arial,sans-serif;margin:24px;max-width:1200px;color:#222}
h1{font-size:22px} h2{font-size:17px;margin:22px 0 6px}
table{border-collapse:collapse;width:100%;table-layout:fixed}
td,th{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left;overflow-wrap:anywhere}
col.figure{width:34%} col.n{width:90px} td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:bold;background:#f3f6fa} tr.removed td.n,tr.quarantined td.n{color:#b22}
tr.added td.n{color:#272} tr.info td{color:#555} td.note{color:#555;font-size:13px}
.ok{color:#272} .fail{color:#b22;font-weight:bold} img{max-width:100%}
"""


def _stage_table(stage: str, rows: list[Row]) -> str:
    body = "".join(
        f'<tr class="{r.kind}" data-stage="{html.escape(stage)}">'
        f'<td class="figure">{html.escape(label(r))}</td><td class="n">{r.n}</td>'
        f'<td class="note">{html.escape(r.note)}</td></tr>' for r in rows)
    cols = '<colgroup><col class="figure"><col class="n"><col></colgroup>'
    return f"<h2>{html.escape(stage)}</h2><table>{cols}{body}</table>"


def render_html(f: Funnel, root: str = "", plots: dict[str, bytes] | None = None) -> str:
    """A self-contained HTML page (inline CSS and PNGs, opens offline).

    Args:
        f: the funnel.
        root: storage root shown in the title.
        plots: caption -> PNG bytes, embedded after the summary.
    """
    figs = "".join(f'<figure><img alt="{html.escape(c)}" src="data:image/png;base64,'
                   f'{base64.b64encode(png).decode()}"><figcaption>{html.escape(c)}'
                   f"</figcaption></figure>" for c, png in (plots or {}).items())
    checks = "".join(
        f'<tr class="check"><td class="{"ok" if c.ok else "fail"}">{"ok" if c.ok else "FAIL"}'
        f"</td><td>{html.escape(c.name)}</td><td class='n'>{c.expected}</td>"
        f"<td class='n'>{c.actual}</td></tr>" for c in f.checks)
    src = ", ".join(f"{a}: {f.partitions[a]} partitions ({s})" for a, s in f.sources.items())
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Corpus funnel</title>"
        f"<style>{CSS}</style></head><body><h1>Corpus funnel{' — ' if root else ''}"
        f"{html.escape(root)}</h1><p id='headline'>{html.escape(headline(f))}</p>"
        + "".join(_stage_table(s, rows) for s, rows in stages(f)) + figs
        + "<h2>Checks</h2><table><colgroup><col style='width:60px'><col><col class='n'>"
        "<col class='n'></colgroup><tr><th></th><th>reconciliation</th><th class='n'>expected"
        f"</th><th class='n'>actual</th></tr>{checks}</table><p class='note'>Counts from: "
        f"{html.escape(src)}</p></body></html>")
